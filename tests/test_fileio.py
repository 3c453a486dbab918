"""Crash-safe writes: readers see the old file or the whole new one, never a fragment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from avengers_core.fileio import atomic_open, atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def leftovers(folder: Path) -> list[str]:
    """Temporary files left behind in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "f.txt"
    atomic_write_text(target, "first ü\n")
    assert target.read_text(encoding="utf-8") == "first ü\n"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(target.parent) == []


def test_exception_mid_write_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old content")
    with pytest.raises(RuntimeError, match="disk full"), atomic_open(target) as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old content"
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["f.json"]


def test_interrupt_mid_write_of_a_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt), atomic_open(target, "wb") as f:
        f.write(b"\x00" * 1000)
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_killed_process_never_leaves_a_fragment(tmp_path):
    """A hard crash (no cleanup at all) mid-write: the target still holds the old bytes."""
    target = tmp_path / "f.txt"
    target.write_text("old")
    code = (
        "import os, sys\n"
        "from avengers_core.fileio import atomic_open\n"
        "with atomic_open(sys.argv[1]) as f:\n"
        "    f.write('partial new content')\n"
        "    f.flush()\n"
        "    os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=ROOT, timeout=60)
    assert proc.returncode == 9
    assert target.read_text() == "old"


def test_new_file_is_private(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", ["a", "ab", "r+", "w+"])
def test_modes_that_would_lose_data_are_refused(tmp_path, mode):
    target = tmp_path / "f.txt"
    target.write_text("keep me")
    with pytest.raises(ValueError, match="not supported"), atomic_open(target, mode):
        pass
    assert target.read_text() == "keep me" and leftovers(tmp_path) == []
