"""Avengers Lab core: the Avengers routing recipe (embed, cluster, score, route, vote).

Pure Python, no Streamlit. Heavy libraries are imported where they are used.
"""

__version__ = "0.1.0"
