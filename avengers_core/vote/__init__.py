"""Step 4 of the recipe on the LLM side: repeated sampling and majority vote.

`events` (what a run reports as it goes), `tally` (samples and the majority count),
`stopping` (when a vote may stop early: `decided`, `confident`), `run`
(:class:`~avengers_core.vote.run.VoteRun`, the threaded sampler). Only
:mod:`avengers_core.pipeline` starts a vote.
"""
