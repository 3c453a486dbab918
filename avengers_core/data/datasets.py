"""Demo datasets by name: public source URLs, SHA-256 checksums, a local data directory.

Files are looked up in `AVENGERS_DATA_DIR` (default `./data`) as `<dir>/<dataset>/<file>`
and downloaded from their source when absent, then checked against their SHA-256.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avengers_core import config
from avengers_core.data.table import from_rows
from avengers_core.errors import InputError
from avengers_core.fileio import atomic_open

Progress = Callable[[int, int, str], None]

_LLMROUTER = (
    "https://raw.githubusercontent.com/ulab-uiuc/LLMRouter/"
    "4e7a796942ce26e9d5f2b93191c7c2585c99c2e3/"
)
_GSM8K = (
    "https://raw.githubusercontent.com/openai/grade-school-math/"
    "3101c7d5072418e28b9008a6636bde82a006892c/"
)


@dataclass(frozen=True)
class DataFile:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    licence: str
    files: tuple[DataFile, ...]


DATASETS: dict[str, Dataset] = {
    "llmrouter": Dataset(
        name="llmrouter",
        description="LLMRouter: 6,108 queries, 9 open models, 14 tasks (a real routing table)",
        licence="MIT",
        files=(
            DataFile("dcrouter_train.json", _LLMROUTER + "data/dcrouter_preprocessed/train.json",
                     "ad3ae70149998f02cbf0dd4557ccb6afcf365ac9391b7371329ffc22201e90e3"),
            DataFile("dcrouter_test.json", _LLMROUTER + "data/dcrouter_preprocessed/test.json",
                     "fbb6d3e3f62c7018e5446d3154cc05812d3124381f774738e9f0bac5bff79c79"),
            DataFile("query_train.jsonl",
                     _LLMROUTER + "data/example_data/query_data/default_query_train.jsonl",
                     "f1b2e3281dc3f9e082016812e1a778ca30e9828c7e58fa0a9f6dc52350ad4b8c"),
            DataFile("query_test.jsonl",
                     _LLMROUTER + "data/example_data/query_data/default_query_test.jsonl",
                     "0fdf4b4236fb81c1a673a01950fb974e02599c83164b0e7832888aefaa490e27"),
            DataFile("llm_candidates.json",
                     _LLMROUTER + "data/example_data/llm_candidates/default_llm.json",
                     "278f790564efd758ab28a9b6ce141d3fa057219de9bad40b31562c4286549552"),
            DataFile("LICENSE", _LLMROUTER + "LICENSE",
                     "905c5b3e88f78dc96ed4d0b8ec1c0a20fbb3122988b7d992be64d751836ecc92"),
        ),
    ),
    "gsm8k": Dataset(
        name="gsm8k",
        description="GSM8K: grade-school math questions with gold answers (for calibration)",
        licence="MIT",
        files=(
            DataFile("test.jsonl", _GSM8K + "grade_school_math/data/test.jsonl",
                     "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"),
            DataFile("train.jsonl", _GSM8K + "grade_school_math/data/train.jsonl",
                     "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465"),
            DataFile("LICENSE", _GSM8K + "LICENSE",
                     "86bbb73e855821d7c401912fd4bf82e34313e6e3b6fd6f909f2b6cc9e209a53b"),
        ),
    ),
}

#: Demo datasets that are routing tables (loadable with `load_table(name)`).
TABLES = ("llmrouter",)


def data_dir() -> Path:
    """Where demo data lives: `AVENGERS_DATA_DIR`, default `./data` (`config.data_dir`)."""
    return config.data_dir()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(spec: DataFile, dest: Path, progress: Progress | None) -> None:
    """Fetch `spec.url` into a temporary file beside `dest`, check its SHA-256, then rename.

    `dest` appears only complete and verified: an interrupted or corrupted download leaves
    no file behind (and an older file, if any, untouched).
    """
    h = hashlib.sha256()
    try:
        with atomic_open(dest, "wb") as out:
            with urllib.request.urlopen(spec.url, timeout=30) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                while block := resp.read(1 << 16):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total or done, f"downloading {dest.name}")
            if h.hexdigest() != spec.sha256:
                raise InputError(
                    f"{dest}: checksum mismatch after download from {spec.url} (expected "
                    f"sha256 {spec.sha256}, got {h.hexdigest()}); nothing was written"
                )
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        raise InputError(
            f"{dest}: not found locally and the download from {spec.url} failed ({e}). "
            f"Copy the file there or set AVENGERS_DATA_DIR to a folder that has it."
        ) from None


def demo_file(
    dataset: str, name: str, *, download: bool = True, progress: Progress | None = None
) -> Path:
    """The local path of one demo file, downloaded and checksum-verified if absent."""
    if dataset not in DATASETS:
        raise InputError(f"unknown demo dataset {dataset!r} (expected one of {sorted(DATASETS)})")
    spec = next((f for f in DATASETS[dataset].files if f.name == name), None)
    if spec is None:
        raise InputError(f"demo dataset {dataset!r} has no file {name!r}")
    path = data_dir() / dataset / name
    if not path.exists():
        if not download:
            raise InputError(f"{path}: missing (run `avengers data` to fetch the demo data)")
        _download(spec, path, progress)
    return path


def fetch(
    names: list[str] | None = None, *, verify: bool = True, progress: Progress | None = None
) -> dict[str, str]:
    """Make every file of the named datasets present; return {relative path: status}."""
    status: dict[str, str] = {}
    for ds in names or list(DATASETS):
        if ds not in DATASETS:
            raise InputError(f"unknown demo dataset {ds!r} (expected one of {sorted(DATASETS)})")
        for f in DATASETS[ds].files:
            path = data_dir() / ds / f.name
            existed = path.exists()
            demo_file(ds, f.name, progress=progress)
            if verify and existed and sha256_of(path) != f.sha256:
                raise InputError(f"{path}: checksum mismatch (expected sha256 {f.sha256}); "
                                 "delete it and run again to download it afresh")
            status[f"{ds}/{f.name}"] = "ok" if existed else "downloaded"
    return status


def available(dataset: str) -> bool:
    """True when every file of `dataset` is already in the data directory."""
    return all((data_dir() / dataset / f.name).exists() for f in DATASETS[dataset].files)


def load_demo_table(name: str, progress: Progress | None = None):
    """A demo routing table, converted from its raw files."""
    if name == "llmrouter":
        return _llmrouter_table(progress)
    raise InputError(f"{name!r} is not a demo routing table (expected one of {TABLES})")


def _llmrouter_table(progress: Progress | None):
    """LLMRouter's dcrouter scores, tasks joined on the exact question text, prices as costs."""

    def get(name: str) -> Path:
        return demo_file("llmrouter", name, progress=progress)

    task_of: dict[str, str] = {}
    for qfile in ("query_train.jsonl", "query_test.jsonl"):
        with open(get(qfile), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    task_of.setdefault(rec["query"], rec["task_name"])
    prices = json.loads(get("llm_candidates.json").read_text(encoding="utf-8"))
    price = {m: (p["input_price"] + p["output_price"]) / 2 for m, p in prices.items()}
    rows = []
    for split in ("train", "test"):
        records = json.loads(get(f"dcrouter_{split}.json").read_text(encoding="utf-8"))
        for i, rec in enumerate(records):
            q = rec["question"]
            rows.append({
                "id": f"{split}-{i}",
                "query": q,
                "task": task_of.get(q, ""),
                "scores": rec["scores"],
                "costs": {m: price[m] for m in rec["scores"] if m in price},
            })
    table = from_rows(rows, "llmrouter")
    table.source = "llmrouter"
    missing = sum(1 for t in table.tasks or [] if not t)
    if missing:
        table.notes.append(f"{missing} queries have no task in the source's query files")
    return table
