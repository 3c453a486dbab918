"""A pickle payload with a visible side effect, for tests that prove nothing is unpickled."""

from __future__ import annotations

import os
from pathlib import Path


class Boom:
    """Unpickling this creates the folder `marker`: proof that a pickle was loaded."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)
