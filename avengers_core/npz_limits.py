"""Size checks on an `.npz` before anything in it is decompressed (issue 20).

Why: an `.npz` is a zip of `.npy` files, and the size limits on a profile's files apply to
their compressed bytes. A 1 MiB `centroids.npz` can hold a member that inflates to 1 GiB
(seconds of CPU and gigabytes of memory before NumPy notices anything), or an `.npy` whose
header declares a shape of billions of floats that NumPy allocates before reading. So
:func:`check_npz` reads only the zip directory (each member's declared uncompressed size,
which `zipfile` also enforces while inflating) and each `.npy` header (a few hundred
bytes: dtype and shape) and refuses the archive when any of them exceeds the cap.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib

import numpy as np

from avengers_core.errors import InputError

MAX_NPZ_MEMBERS = 16


def check_npz(data: bytes, where: str, max_bytes: int) -> None:
    """Raise InputError (naming `where`) when the `.npz` in `data` declares a member, or
    all members together, larger than `max_bytes` uncompressed, or an array whose shape
    and dtype need more than `max_bytes`. Data that is not a zip is left to the reader
    (it names the problem); nothing is decompressed beyond the `.npy` headers."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise InputError(f"{where}: {len(infos)} arrays (expected at most "
                             f"{MAX_NPZ_MEMBERS})")
        total = 0
        for info in infos:
            total += info.file_size
            if info.file_size > max_bytes or total > max_bytes:
                raise InputError(f"{where}: array {info.filename!r} inflates to "
                                 f"{info.file_size:,} bytes (expected at most "
                                 f"{max_bytes:,} bytes in all)")
            if info.filename.endswith(".npy"):
                _check_header(archive, info, where, max_bytes)


def _check_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str,
                  max_bytes: int) -> None:
    """Refuse an `.npy` member whose header declares more than `max_bytes` of data."""
    fmt = np.lib.format
    try:
        with archive.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                return  # another format version: the declared size above still holds
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{where}: array {info.filename!r} has an unreadable header "
                         f"({e})") from None
    size = math.prod(int(d) for d in shape) * max(1, dtype.itemsize)
    if size > max_bytes:
        raise InputError(f"{where}: array {info.filename!r} declares shape {tuple(shape)} of "
                         f"{dtype} ({size:,} bytes; expected at most {max_bytes:,})")
