"""Calibration: score your own models on labeled questions to build a routing table.

`questions` (reading question files and the demo sets), `store` (the append-only results
file and the table built from it), `run` (asking the models and grading their answers).
"""
