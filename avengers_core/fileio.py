"""Crash-safe writes: write to a temporary file beside the target, then rename over it.

A crash or a full disk mid-write leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit it replaces `path` atomically.

    Only "w" and "wb": appending or reading would start from the empty temporary file and
    replace the old content with a fragment. The file is created private (mode 0600).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r} not supported (expected 'w' or 'wb')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    with atomic_open(path, "w") as f:
        f.write(text)
