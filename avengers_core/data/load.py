"""`load_table(name_or_path)`: a demo table by name, or a file by path."""

from __future__ import annotations

from pathlib import Path

from avengers_core.data import datasets
from avengers_core.data.readers import read_table
from avengers_core.data.table import RoutingTable


def load_table(name_or_path: str | Path) -> RoutingTable:
    """A demo dataset by name (e.g. 'llmrouter', downloaded and verified on first use) or a
    table file by path (`readers.SUFFIXES`). Raises InputError for a bad file."""
    key = str(name_or_path)
    if key in datasets.TABLES:
        return datasets.load_demo_table(key)
    return read_table(name_or_path)
