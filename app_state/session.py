"""Session state: the settings that survive page switches and the session's datasets.

Uploaded tables live in the browser session (`st.session_state`), so two tabs never see
each other's uploads; the demo table is loaded once per process.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from avengers_core.data import datasets
from avengers_core.data.readers import read_table
from avengers_core.data.table import RoutingTable
from avengers_core.embed.base import DEFAULT_EMBEDDER
from avengers_core.errors import InputError

DEMO = "llmrouter"
PER_DATASET = ("k",)  # settings whose range depends on the table: one value per dataset
DEFAULTS: dict[str, Any] = {
    "embedder": DEFAULT_EMBEDDER,
    "device": "auto",  # AVENGERS_DEVICE, else CUDA, MPS, CPU (issue 13)
    "k": 64,
    "seed": 0,
    "top_k": 3,
    "beta": 6.0,
    "top_n": 1,
    "alpha": 1.0,
    "map_color": "cluster",
}


@dataclass(frozen=True)
class Dataset:
    """The table a session works on; `key` identifies it in every cache."""

    key: str
    name: str
    table: RoutingTable


# -- settings that survive page switches ------------------------------------------------


def setting_key(name: str) -> str:
    """Where setting `name` lives in session state: K is kept per dataset, so a small
    upload lowering it never changes the K of the demo table."""
    if name in PER_DATASET:
        return f"{name}@{st.session_state.get('dataset', DEMO)}"
    return name


def default_k(n: int) -> int:
    """The starting K for a table of `n` queries: 64, or n / 4 when 64 does not fit."""
    return DEFAULTS["k"] if n >= DEFAULTS["k"] else max(1, n // 4)


def get(name: str) -> Any:
    """A setting of this session (embedder, k, seed, top_k, beta, top_n, alpha)."""
    key = setting_key(name)
    if key not in st.session_state and name == "k":
        ds = current_dataset()
        st.session_state[key] = default_k(len(ds.table)) if ds else DEFAULTS["k"]
    return st.session_state.setdefault(key, DEFAULTS.get(name))


def bind(name: str, value: Any = None) -> dict[str, Any]:
    """Widget kwargs keeping `name` in session state even while its page is not shown.

    Streamlit drops a widget's state when the widget is not rendered, so the widget gets
    its own key and copies its value to the setting on change. `value` (default: the
    setting) is what the widget shows, e.g. the setting clamped to this table's range.
    """
    key = setting_key(name)
    wkey = f"_w_{key}"
    st.session_state[wkey] = get(name) if value is None else value

    def copy() -> None:
        st.session_state[key] = st.session_state[wkey]

    return {"key": wkey, "on_change": copy}


def int_slider(label: str, lo: int, hi: int, name: str | None = None, value: int = 1,
               where: Any = None, **kw: Any) -> int:
    """An integer slider bound to setting `name` (or starting at `value`), kept in range.

    With a single possible value (a one-model table, K = 1) it is shown as a caption:
    Streamlit refuses a slider whose bounds are equal. Clamping only changes what is
    shown: the setting keeps the user's choice until they move the slider.
    """
    where = where or st
    if hi <= lo:
        where.caption(f"{label}: {lo}")
        return lo
    if name:
        return where.slider(label, lo, hi, **bind(name, min(max(int(get(name)), lo), hi)),
                            **kw)
    return where.slider(label, lo, hi, value=min(max(value, lo), hi), **kw)


# -- datasets ---------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the demo table…")
def _demo_table(name: str) -> RoutingTable:
    return datasets.load_demo_table(name)


def demo_available() -> bool:
    """True when the demo table's files are in the data directory (no download needed)."""
    return datasets.available(DEMO)


def _tables() -> dict[str, Dataset]:
    return st.session_state.setdefault("tables", {})


def add_table(name: str, table: RoutingTable, origin: str, current: bool = True) -> Dataset:
    """Add `table` to the session's datasets (an upload or a calibration result) and, with
    `current`, make it the current one (a calibration is only added: issue 19, item 6)."""
    digest = hashlib.sha256(table.to_csv().encode("utf-8")).hexdigest()[:16]
    ds = Dataset(f"{origin}:{digest}", name, table)
    _tables()[ds.key] = ds
    if current:
        st.session_state["dataset"] = ds.key
    return ds


def upload_suffix(name: str) -> str:
    """The extension of an uploaded file's name, lower case, or "" when it is not a plain
    one: the only part of a browser's file name that may reach the file system."""
    suffix = Path(name.strip()).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""


def read_upload(name: str, data: bytes) -> RoutingTable:
    """Parse an uploaded table; InputError messages name the file as the user knows it.

    The bytes are parsed from a temporary file named only after the upload's extension,
    so a strange name (empty, very long, odd characters) never reaches the file system.
    """
    shown = name.strip() or "upload"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{upload_suffix(shown)}"
        path.write_bytes(data)
        try:
            table = read_table(path)
        except InputError as e:
            raise InputError(str(e).replace(str(path), shown)) from None
    table.source = shown
    return table


def dataset_choices() -> dict[str, str]:
    """key -> display name of every dataset this session can switch to."""
    out = {DEMO: f"{DEMO} (demo)"} if demo_available() else {}
    out.update({k: ds.name for k, ds in _tables().items()})
    return out


def current_dataset() -> Dataset | None:
    """The session's dataset: the last chosen, else the demo table when it is available."""
    key = st.session_state.get("dataset")
    if key in _tables():
        return _tables()[key]
    if demo_available():
        st.session_state["dataset"] = DEMO
        return Dataset(DEMO, f"{DEMO} (demo)", _demo_table(DEMO))
    return None


def require_dataset() -> Dataset:
    """The current dataset, or explain how to get one and stop the page."""
    ds = current_dataset()
    if ds is None:
        st.info(
            "No routing table yet. Fetch the demo data with `avengers data` (or point "
            "`AVENGERS_DATA_DIR` at a folder holding `llmrouter/`), then reload; or upload "
            "your own table on the **Data** page."
        )
        st.stop()
    return ds


def k_of(ds: Dataset) -> int:
    """The session's K for this dataset, within what K-means can fit (1 <= K <= N)."""
    return min(max(1, int(get("k"))), len(ds.table))


def few_per_cluster(ds: Dataset, k: int) -> bool:
    """True when K leaves under ten queries per cluster on average (noisy profiles)."""
    return k > 1 and len(ds.table) / k < 10
