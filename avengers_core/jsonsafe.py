"""JSON that every reader accepts: no NaN or Infinity anywhere (issue 22).

Python's `json` writes float NaN and infinities as the bare words `NaN` and `Infinity`,
which the JSON standard (RFC 8259, section 6) does not allow and strict readers (browsers'
`JSON.parse`, jq, Go, Rust) refuse. Every JSON the package writes for others (profile.json,
`--json` output, the app's downloads) goes through :func:`dumps`: a value that is not a
finite number is written as `null`, which the package's own readers take as "not given".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float (Python or NumPy) replaced by None, NumPy
    scalars and arrays turned into Python numbers and lists, tuples into lists. Other
    values are returned unchanged."""
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` of :func:`finite` (obj), with `allow_nan=False` so nothing non-standard
    can slip through; `kwargs` go to `json.dumps` (indent, ensure_ascii, default...)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
