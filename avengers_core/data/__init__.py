"""The labeled set: a routing table (queries × models → scores), its readers and the demo data.

`table` holds the data model and its checks, `readers` the file formats (JSON Lines, CSV,
Parquet), `datasets` the demo data (download and SHA-256), `load` the one entry point
`load_table(name_or_path)`. Nothing here imports embed, routing or the LLM side.
"""

from avengers_core.data.load import load_table
from avengers_core.data.readers import SUFFIXES, read_table
from avengers_core.data.table import RoutingTable, check_enough_rows, from_rows

__all__ = ["SUFFIXES", "RoutingTable", "check_enough_rows", "from_rows", "load_table", "read_table"]
