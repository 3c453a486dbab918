"""Steps 2–4 of the recipe on the routing side: cluster, score, route; never the LLM side.

`cluster` (K-means), `score` (the K × M capability profile and the task prior), `shrinkage`
(the prior's strength chosen by cross-validation), `routers/` (the registry, the recipe
`AvengersRouter`, baselines and learned routers), `profile` (save and load a fitted router),
`evaluate` (held-out comparison and sweeps).
"""
