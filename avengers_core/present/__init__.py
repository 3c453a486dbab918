"""Figures and reports: `plots` (plotly figures), `maps` (PCA / UMAP 2-D maps, cached),
`labels` (c-TF-IDF cluster labels), `tour` (the "How it works" page's computations),
`report` (the offline HTML report)."""
