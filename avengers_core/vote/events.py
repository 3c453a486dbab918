"""What a vote reports as it runs: the CLI prints these events, the app draws them live."""

from __future__ import annotations

from dataclasses import dataclass

from avengers_core.vote.tally import Sample, Tally, VoteResult

# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStarted:
    """Sampling of `model` (routing rank `rank`) begins: `samples` requests follow."""

    model: str
    rank: int
    samples: int


@dataclass(frozen=True)
class SampleStarted:
    """Request `sample` was sent (with its seed)."""

    sample: int
    model: str
    seed: int


@dataclass(frozen=True)
class Token:
    """Streamed text of `sample` (adjacent chunks are merged when the consumer lags)."""

    sample: int
    text: str


@dataclass(frozen=True)
class SampleFinished:
    """A sample ended: `sample.text`, and `sample.error` if it failed."""

    sample: Sample


@dataclass(frozen=True)
class AnswerExtracted:
    """The answer extracted from a successful sample (None: no answer found)."""

    sample: int
    answer: str | None


@dataclass(frozen=True)
class TallyChanged:
    """The vote over all finished samples so far."""

    tally: Tally


@dataclass(frozen=True)
class Settled:
    """A stopping rule ended the vote early (`rule`: "decided" or "confident") after
    `drawn` of the `asked` samples; `dropped` are the samples cancelled in flight (their
    partial text is discarded)."""

    rule: str
    drawn: int
    asked: int
    dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunFinished:
    """The last event: the result (also in `VoteRun.result`)."""

    result: VoteResult
