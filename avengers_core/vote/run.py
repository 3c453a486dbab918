"""Repeated sampling and majority vote: the run is a stream of small events.

Why events: the CLI prints them and the Streamlit app draws them live from its script
thread, so a run is a :class:`VoteRun` whose :meth:`VoteRun.events` generator yields
:class:`SampleStarted`, :class:`Token`, :class:`SampleFinished`, :class:`AnswerExtracted`,
:class:`TallyChanged` and finally :class:`RunFinished`. Samples of one model run
concurrently (bounded pool); models run one after another (one model loaded at a time).
Where a server honours `n` (vLLM, SGLang, `llama-server`), one request draws several
samples that share the prompt's prefill; where it returns fewer choices than asked, the
missing samples are drawn one request each and `VoteRun.notes` says so.
:meth:`VoteRun.cancel` aborts every request; nothing keeps running afterwards.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avengers_core.answers.extract import extract_with_reason
from avengers_core.answers.prompts import make_prompt
from avengers_core.answers.thinking import CUT_OFF, split_thinking
from avengers_core.backends import (
    DEFAULT_TEMPERATURE,
    Backend,
    SampleError,
    StreamCall,
    Timeouts,
)
from avengers_core.backends.endpoints import Engines, as_engines
from avengers_core.backends.retry import call_retries, retry_notes
from avengers_core.vote.events import (
    AnswerExtracted,
    ModelStarted,
    RunFinished,
    SampleFinished,
    SampleStarted,
    TallyChanged,
    Token,
)
from avengers_core.vote.tally import FINAL, TRUNCATED, Sample, Tally, VoteResult, count_votes

STRATEGIES = ("single", "spread", "switch")
THREAD_PREFIX = "avengers-vote"


Event = (
    ModelStarted
    | SampleStarted
    | Token
    | SampleFinished
    | AnswerExtracted
    | TallyChanged
    | RunFinished
)


# -- the run -----------------------------------------------------------------------------


@dataclass
class _Stage:
    model: str
    rank: int
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class _WorkerDone:
    pass


class VoteRun:
    """One vote: iterate :meth:`events` (in any thread) and :meth:`cancel` from any thread.

    client: the engines (or one backend, or an Ollama host). models: names the engines
    serve, best routing rank first. strategy: `single` (all samples from the top model),
    `spread` (samples spread over all given models), `switch` (Model-Switch: the next
    model is sampled only while the winner's share is below `threshold`). options:
    `max_tokens`, and `think` (False turns a reasoning model's thinking off; a level
    such as "low" for models that take one).
    """

    def __init__(
        self,
        client: Engines | Backend | str | None,
        models: Sequence[str],
        query: str,
        *,
        samples: int = 10,
        temperature: float = DEFAULT_TEMPERATURE,
        kind: str = "number",
        choices: Sequence[str] | None = None,
        concurrency: int = 4,
        strategy: str = "single",
        threshold: float = 0.6,
        seed: int = 0,
        prompt: str | None = None,
        embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None,
        timeouts: Timeouts | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not models:
            raise ValueError("no model to sample")
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        self.engines = as_engines(client, timeouts)
        self.options = dict(options or {})
        self.notes: list[str] = []
        self._retries: list[tuple[str, int, float]] = []  # busy engines waited for (issue 22)
        self._ignores_n: set[str] = set()  # endpoints already noted as ignoring n
        self.models = list(models)
        self.query = query
        self.n_samples = samples
        self.temperature = temperature
        self.kind = kind
        self.choices = list(choices) if choices else None
        self.concurrency = max(1, int(concurrency))
        self.strategy = strategy
        self.threshold = threshold
        self.seed = seed
        self.prompt = prompt if prompt is not None else make_prompt(query, kind, self.choices)
        self._embed = _cached(embed) if embed is not None else None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._calls: set[StreamCall] = set()
        self._threads: list[threading.Thread] = []
        self._samples: list[Sample] = []
        self._arrivals = 0
        self._counted: tuple[int, Tally] | None = None  # (samples counted, their tally)
        self._started = False
        self._stage_size = 1
        self.result: VoteResult | None = None

    # -- control ------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop now: no new sample starts and every running request is aborted."""
        self._cancel.set()
        with self._lock:
            calls = list(self._calls)
        for call in calls:
            call.abort("cancelled")

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker threads (after a cancel they end promptly)."""
        for t in list(self._threads):
            t.join(timeout)

    def __enter__(self) -> VoteRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
        self.join()

    def run(self, on_event: Callable[[Event], None] | None = None) -> VoteResult:
        """Consume all events (passing each to `on_event`) and return the result."""
        for ev in self.events():
            if on_event is not None:
                on_event(ev)
        assert self.result is not None
        return self.result

    # -- the stream ---------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """The run's events; ends with RunFinished. Closing the generator cancels the run."""
        if self._started:
            raise RuntimeError("a VoteRun can be iterated only once")
        self._started = True
        finished = False
        try:
            for stage in self._stages():
                if self._cancel.is_set():
                    break
                yield ModelStarted(stage.model, stage.rank, len(stage.samples))
                yield from self._run_stage(stage)
                if self.strategy == "switch" and self._tally().confidence >= self.threshold:
                    break
            self.result = VoteResult(
                query=self.query,
                kind=self.kind,
                models=sorted({s.model for s in self._samples}, key=self.models.index),
                samples=sorted(self._samples, key=lambda s: s.index),
                tally=self._tally(),
                cancelled=self._cancel.is_set(),
                notes=[*self.notes, *retry_notes(self._retries)],
            )
            finished = True
            yield RunFinished(self.result)
        finally:
            if not finished:
                self.cancel()
            self.join()

    def _stages(self) -> Iterator[_Stage]:
        n = self.n_samples
        if self.strategy == "single":
            plan = [(self.models[0], 0, n)]
        elif self.strategy == "spread":
            m = min(len(self.models), n)
            plan = [(self.models[r], r, n // m + (r < n % m)) for r in range(m)]
        else:
            plan = [(model, r, n) for r, model in enumerate(self.models)]
        index = 0
        for model, rank, count in plan:
            stage = _Stage(model, rank)
            for _ in range(count):
                stage.samples.append(Sample(index, model, rank, self.seed + index))
                index += 1
            yield stage

    def _run_stage(self, stage: _Stage) -> Iterator[Event]:
        events: queue.Queue[Any] = queue.Queue()
        pending = list(reversed(stage.samples))
        workers = [
            threading.Thread(
                target=self._worker,
                args=(pending, events),
                name=f"{THREAD_PREFIX}-{stage.rank}-{i}",
                daemon=True,
            )
            for i in range(min(self.concurrency, len(pending)))
        ]
        self._threads = workers
        self._stage_size = len(stage.samples)
        for t in workers:
            t.start()
        alive = len(workers)
        while alive:
            for ev in _drain(events):
                if isinstance(ev, _WorkerDone):
                    alive -= 1
                elif isinstance(ev, SampleFinished):
                    yield from self._finish(ev.sample)
                else:
                    yield ev
        self.join()

    def _worker(self, pending: list[Sample], events: queue.Queue[Any]) -> None:
        try:
            while not self._cancel.is_set():
                with self._lock:
                    if not pending or self._cancel.is_set():
                        return
                    batch = [pending.pop() for _ in range(self._batch_size(pending))]
                first = batch[0]
                call = self.engines.stream_call(
                    first.model, self.prompt, seed=first.seed, temperature=self.temperature,
                    n=len(batch), options=self.options,
                )
                with self._lock:
                    self._calls.add(call)
                    if self._cancel.is_set():  # cancelled while the call was being built
                        call.abort("cancelled")
                for s in batch:
                    s.endpoint = call.endpoint
                    events.put(SampleStarted(s.index, s.model, s.seed))
                try:
                    redo = self._draw(batch, call, events)
                finally:
                    with self._lock:
                        self._calls.discard(call)
                        self._retries.extend(call_retries(call))
                if redo:  # the server ignored `n`: draw the rest one request each
                    self.engines.n_ignored(call.endpoint)
                    with self._lock:
                        if call.endpoint not in self._ignores_n:  # one note per endpoint
                            self._ignores_n.add(call.endpoint)
                            self.notes.append(
                                f"{call.endpoint} returned {len(batch) - len(redo)} of "
                                f"{len(batch)} choices asked (it ignores n); drew the rest "
                                "one request each")
                        pending.extend(reversed(redo))
                for s in batch:
                    if s not in redo:
                        events.put(SampleFinished(s))
        finally:
            events.put(_WorkerDone())

    def _batch_size(self, pending: list[Sample]) -> int:
        """Samples to draw in the next request: 1, or an equal share of the stage's
        samples per worker where the server may honour `n` (call with the lock held)."""
        if not self.engines.supports_n(pending[-1].model):
            return 1
        return min(len(pending), -(-self._stage_size // self.concurrency))

    @staticmethod
    def _draw(batch: list[Sample], call: StreamCall, events: queue.Queue[Any]) -> list[Sample]:
        """Run one call for the batch; return the samples it did not draw (a server that
        ignores `n` returns one choice)."""
        parts: list[list[str]] = [[] for _ in batch]

        def on_token(i: int, text: str) -> None:
            if i < len(batch):
                parts[i].append(text)
                events.put(Token(batch[i].index, text))

        try:
            choices = call.run_choices(on_token)
        except SampleError as exc:
            for s, got in zip(batch, parts, strict=True):
                s.text = "".join(got)
                s.error = exc.reason
            return []
        for i, (s, choice) in enumerate(zip(batch, choices, strict=False)):
            s.text, s.thinking, s.error = choice.text, choice.thinking, choice.error
            s.truncated = choice.truncated
            s.finish_reason = choice.finish_reason
            s.prompt_tokens, s.completion_tokens = choice.prompt_tokens, choice.completion_tokens
            s.choice = i if len(batch) > 1 else 0
        return batch[len(choices):]

    def _finish(self, sample: Sample) -> Iterator[Event]:
        sample.arrival = self._arrivals
        self._arrivals += 1
        if sample.error is None:
            split = split_thinking(sample.text, sample.thinking)
            sample.text, sample.thinking = split.answer, split.thinking
            if split.cut_off:
                sample.no_answer = CUT_OFF
            elif sample.truncated and self.kind != "free" and not FINAL.search(sample.text):
                sample.no_answer = TRUNCATED  # its last number may be a step, not the answer
            else:
                sample.answer, sample.no_answer = extract_with_reason(
                    sample.text, self.kind, self.choices, self.query)
        self._samples.append(sample)
        yield SampleFinished(sample)
        if sample.error is None:
            yield AnswerExtracted(sample.index, sample.answer)
        yield TallyChanged(self._tally())

    def _tally(self) -> Tally:
        """The vote over the finished samples, counted once per new sample (the last
        TallyChanged, the Model-Switch check and the result share it)."""
        n = len(self._samples)
        if self._counted is None or self._counted[0] != n:
            self._counted = (n, count_votes(self._samples, self.kind, self._embed))
        return self._counted[1]


def _drain(events: queue.Queue[Any]) -> list[Any]:
    """Block for one event, then take what is queued, merging adjacent tokens of a sample
    (joined once: a lagging consumer must not make the merge quadratic)."""
    runs: list[Any] = []  # events, and (sample, texts) for each run of tokens
    while True:
        # Wake up now and then: the kernel may deliver Ctrl-C's SIGINT to a worker thread,
        # and Python runs the handler (KeyboardInterrupt here) only when this thread returns
        # to bytecode; an endless get() would sleep through it while requests hang.
        try:
            ev = events.get(timeout=0.1)
            break
        except queue.Empty:
            continue
    while True:
        last = runs[-1] if runs else None
        if isinstance(ev, Token) and isinstance(last, tuple) and last[0] == ev.sample:
            last[1].append(ev.text)
        elif isinstance(ev, Token):
            runs.append((ev.sample, [ev.text]))
        else:
            runs.append(ev)
        try:
            ev = events.get_nowait()
        except queue.Empty:
            break
    return [Token(r[0], "".join(r[1])) if isinstance(r, tuple) else r for r in runs]


def _cached(
    embed: Callable[[list[str]], Sequence[Sequence[float]]],
) -> Callable[[list[str]], list[Sequence[float]]]:
    cache: dict[str, Sequence[float]] = {}

    def wrapped(texts: list[str]) -> list[Sequence[float]]:
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            cache.update(zip(new, embed(new), strict=True))
        return [cache[t] for t in texts]

    return wrapped
