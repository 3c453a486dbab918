"""The Streamlit app's state, split by concern; each page imports the modules it needs.

- `session`: settings that survive page switches, the session's datasets;
- `compute`: cached core computations (embeddings, fits, maps, evaluation) with progress;
- `engines`: the LLM engine (Ollama) for voting and calibration;
- `fmt`: escaping and formatting of data shown in Markdown;
- `sidebar`: the sidebar drawn around every page.
"""
