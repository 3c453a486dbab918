"""The app's background jobs: long work (embedding, fitting, evaluating) runs once per key
in a worker thread shared by all sessions, so a click that interrupts the script never
restarts it; pages poll its progress. Workers stop at their next progress step at exit."""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_state.fmt import duration

WORKER = "avengers-"  # the name prefix of the worker threads
_STOP = threading.Event()  # set at exit: workers stop at their next progress step


class Stopped(Exception):
    """Raised inside a worker's progress callback when the process is exiting."""


@atexit.register
def _stop_workers(timeout: float = 30.0) -> None:
    """At exit, stop the workers at their next progress step and wait for them: a daemon
    thread killed inside torch aborts the process ("terminate called without an active
    exception", exit code 134), e.g. a background embedding when the server stops."""
    _STOP.set()
    for t in threading.enumerate():
        if t.name.startswith(WORKER) and t.is_alive():
            t.join(timeout)


@st.cache_resource(show_spinner=False, max_entries=64)
def _slot(kind: str, *key: object) -> dict[str, Any]:
    """A process-wide box per computation and key; filled once, shared by all sessions."""
    return {"lock": threading.Lock()}


def _start(kind: str, key: tuple, compute: Callable[[Callable[[int, int, str], None]], Any]
           ) -> dict[str, Any]:
    """The slot of (kind, key), its worker thread started unless a value is already there."""
    slot = _slot(kind, *key)
    with slot["lock"]:
        if "value" in slot or "thread" in slot:
            return slot
        slot["progress"] = (0, 1, "starting")

        def report(done: int, total: int, message: str) -> None:
            if _STOP.is_set():
                raise Stopped("the process is exiting")
            slot["progress"] = (done, total, message)
            if done and "first" not in slot:  # the rate is measured from the first batch
                slot["first"] = (time.monotonic(), done)

        def work() -> None:
            try:
                slot["value"] = compute(report)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting script
                slot["error"] = e

        slot["thread"] = threading.Thread(target=work, name=f"{WORKER}{kind}", daemon=True)
        slot["thread"].start()
    return slot


def progress_line(slot: dict[str, Any]) -> tuple[float, str]:
    """(fraction done, "1,234 / 5,989 · about 3 min left") of a running computation; the
    time left is extrapolated from the rate since its first reported step."""
    done, total, message = slot["progress"]
    frac = min(1.0, done / total) if total else 0.0
    count = f" ({done:,} / {total:,})" if total > 1 else ""
    first = slot.get("first")
    if first and done > first[1]:
        rate = (done - first[1]) / max(1e-6, time.monotonic() - first[0])
        count += f" · about {duration((total - done) / rate)} left"
    return frac, f"{message}{count}"


def computed(kind: str, key: tuple, compute: Callable[[Callable[[int, int, str], None]], Any],
             label: str) -> Any:
    """`compute(progress)` once per (kind, key) in a worker thread, with a live progress bar.

    The work runs apart from the script because a click elsewhere (another page, a widget)
    interrupts the script: a first embedding of 6k queries must not restart from zero each
    time. The next visit finds the work still running and shows its progress again. (It
    cannot be a `st.cache_*` function either: those replay the elements drawn inside.)
    """
    slot = _start(kind, key, compute)
    if "value" in slot:
        return slot["value"]
    thread = slot["thread"]
    thread.join(0.05)
    if thread.is_alive():
        bar = st.progress(0.0, text=label)
        try:
            while thread.is_alive():
                frac, line = progress_line(slot)
                bar.progress(frac, text=f"{label} {line}")
                thread.join(0.25)
        finally:
            bar.empty()
    with slot["lock"]:
        if "value" in slot:
            return slot["value"]
        error = slot.pop("error", None)  # the next call starts over
        slot.pop("thread", None)
        slot.pop("first", None)
    if error is None:  # another session took the error: try once more ourselves
        return computed(kind, key, compute, label)
    raise error
