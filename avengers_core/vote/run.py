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

Early stopping (`early_stop`, rules in :mod:`avengers_core.vote.stopping`): with a rule on,
at most `concurrency` samples are in flight (waves; an `n` request asks for the free part
of the wave, never for all N), the rule is checked after every finished sample, and when
it fires the samples still in flight are aborted at once and left out of the vote.
A server that ends a stream whenever another request arrives (llama-cpp-python's server
without `--interrupt_requests false`) is found out: the cut samples are drawn again and
that server gets one request at a time for the rest of the run (and of its Engines).
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
from avengers_core.backends.openai import CUT_CHOICE, CUT_STREAM
from avengers_core.backends.retry import call_retries, retry_notes
from avengers_core.vote.events import (
    AnswerExtracted,
    ModelStarted,
    RunFinished,
    SampleFinished,
    SampleStarted,
    Settled,
    TallyChanged,
    Token,
)
from avengers_core.vote.stopping import DEFAULT_CONFIDENCE, check_early_stop, should_stop
from avengers_core.vote.tally import FINAL, TRUNCATED, Sample, Tally, VoteResult, count_votes

STRATEGIES = ("single", "spread", "switch")
THREAD_PREFIX = "avengers-vote"
SETTLED = "vote settled"
"""The abort reason of the samples still in flight when a stopping rule ends the vote."""
CUT_REASONS = (CUT_CHOICE, CUT_STREAM)
"""Stream ends that an engine interrupting its streams produces (see `_request`)."""


Event = (
    ModelStarted
    | SampleStarted
    | Token
    | SampleFinished
    | AnswerExtracted
    | TallyChanged
    | Settled
    | RunFinished
)


# -- the run -----------------------------------------------------------------------------


@dataclass
class _Stage:
    model: str
    rank: int
    samples: list[Sample] = field(default_factory=list)
    pending: list[Sample] = field(default_factory=list)  # next to draw at the end
    in_flight: int = 0  # samples in requests now
    limit: int = 1  # samples in flight at most


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
    such as "low" for models that take one). early_stop: "off" (draw every sample),
    "decided" or "confident" (see :mod:`avengers_core.vote.stopping`); confidence: the
    posterior probability at which `confident` stops.
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
        early_stop: str = "off",
        confidence: float = DEFAULT_CONFIDENCE,
    ) -> None:
        check_early_stop(early_stop, confidence)
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
        self.early_stop = early_stop
        self.confidence = confidence
        self._cond = threading.Condition(self._lock)
        self._plan: list[_Stage] = []
        self._stage: _Stage | None = None
        self._stopped: str | None = None  # the rule that settled the vote
        self._active: dict[str, int] = {}  # requests running per endpoint
        self._n_noted: set[str] = set()
        self._redrawn: dict[str, int] = {}  # endpoint -> samples cut and drawn again
        self._started_at: set[int] = set()  # samples sent at least once
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
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    def _halted(self) -> bool:
        """Cancelled, or settled by a stopping rule: start nothing more."""
        return self._cancel.is_set() or self._stopped is not None

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
            self._plan = list(self._stages())
            reached: list[_Stage] = []
            for stage in self._plan:
                if self._halted():
                    break
                reached.append(stage)
                yield ModelStarted(stage.model, stage.rank, len(stage.samples))
                yield from self._run_stage(stage)
                if self.strategy == "switch" and self._tally().confidence >= self.threshold:
                    break
            asked = sum(len(st.samples) for st in reached)
            if self._cancel.is_set():
                stopped = "cancelled"
            else:
                stopped = self._stopped or "complete"
            self.result = VoteResult(
                query=self.query,
                kind=self.kind,
                models=sorted({s.model for s in self._samples}, key=self.models.index),
                samples=sorted(self._samples, key=lambda s: s.index),
                tally=self._tally(),
                cancelled=self._cancel.is_set(),
                notes=[*self.notes, *self._redraw_notes(), *retry_notes(self._retries)],
                asked=asked,
                stopped=stopped,
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
        stage.pending = list(reversed(stage.samples))
        stopping = self.early_stop != "off"
        stage.limit = self.concurrency if stopping else len(stage.samples)
        workers = [
            threading.Thread(
                target=self._worker,
                args=(stage, events),
                name=f"{THREAD_PREFIX}-{stage.rank}-{i}",
                daemon=True,
            )
            for i in range(min(self.concurrency, len(stage.pending)))
        ]
        self._threads = workers
        self._stage = stage
        for t in workers:
            t.start()
        alive = len(workers)
        while alive:
            for ev in _drain(events):
                if isinstance(ev, _WorkerDone):
                    alive -= 1
                elif self._stopped is not None:
                    continue  # settled: what still arrives is left out of the vote
                elif isinstance(ev, SampleFinished):
                    yield from self._finish(ev.sample)
                    rule = self._stop_rule(stage)
                    if rule is not None:
                        self._settle(rule)
                    with self._cond:  # counted: its place in the wave is free
                        stage.in_flight -= 1
                        self._cond.notify_all()
                elif isinstance(ev, SampleStarted):
                    self._started_at.add(ev.sample)
                    yield ev
                else:
                    yield ev
        self.join()
        if self._stopped is not None and not self._cancel.is_set():
            done = {s.index for s in self._samples}
            dropped = tuple(i for i in sorted(self._started_at) if i not in done)
            asked = sum(len(st.samples) for st in self._plan[: self._plan.index(stage) + 1])
            yield Settled(self._stopped, len(self._samples), asked, dropped)

    def _stop_rule(self, stage: _Stage) -> str | None:
        """The stopping rule that ends the vote now, or None (see vote.stopping).

        Single and spread: the samples still to come are every unfinished one of the plan.
        Model-Switch: those of this model; before the last model, `decided` also needs the
        winner's share to stay at or above the switch threshold whatever they say, so the
        full run would not have sampled the next model either.
        """
        if self.early_stop == "off" or self._cancel.is_set():
            return None
        if self.kind == "free" and self.early_stop == "decided":
            return None  # later samples can regroup free text: nothing is decided early
        done = {s.index for s in self._samples}
        if self.strategy == "switch":
            to_come = [s for s in stage.samples if s.index not in done]
        else:
            to_come = [s for st in self._plan for s in st.samples if s.index not in done]
        if not to_come:
            return None
        tally = self._tally()
        votes = list(tally.votes.values())  # winner first
        rule = should_stop(self.early_stop, votes, len(to_come), self.confidence)
        last = stage is self._plan[-1]
        if rule == "decided" and self.strategy == "switch" and not last:
            if votes[0] / (tally.counted + len(to_come)) < self.threshold:
                return None
        return rule

    def _settle(self, rule: str) -> None:
        """End the vote now: nothing more starts, and the requests in flight are aborted
        (not awaited); their samples are left out of the vote."""
        with self._cond:
            self._stopped = rule
            calls = list(self._calls)
            self._cond.notify_all()
        for call in calls:
            call.abort(SETTLED)

    def _worker(self, stage: _Stage, events: queue.Queue[Any]) -> None:
        try:
            while True:
                with self._cond:
                    while (not self._halted() and stage.pending
                           and stage.in_flight >= stage.limit):
                        self._cond.wait(0.1)
                    if self._halted() or not stage.pending:
                        return
                    batch = [stage.pending.pop() for _ in range(self._batch_size(stage))]
                    stage.in_flight += len(batch)
                # a finished sample keeps its place in the wave until the consumer has
                # counted it (so a settled vote starts nothing more); one drawn again or
                # lost to an error frees it here
                freed = len(batch)
                try:
                    freed = self._request(stage, batch, events)
                finally:
                    with self._cond:
                        stage.in_flight -= freed
                        self._cond.notify_all()
        finally:
            events.put(_WorkerDone())

    def _request(self, stage: _Stage, batch: list[Sample], events: queue.Queue[Any]) -> int:
        """Draw `batch` in one request; put the samples it did not draw back in `pending`;
        return how many samples went back (the rest are reported as SampleFinished).

        Two engine limits are handled here: a server that returns fewer choices than `n`
        asked (it ignores `n`: the rest are drawn one request each), and a server that ends
        a stream whenever another request arrives (a choice cut short while another request
        runs on the same endpoint): that endpoint is run one request at a time from now on
        and the cut samples are drawn again, so a vote never loses samples to it.
        """
        first = batch[0]
        call = self.engines.stream_call(
            first.model, self.prompt, seed=first.seed, temperature=self.temperature,
            n=len(batch), options=self.options,
        )
        endpoint = call.endpoint
        with self._lock:
            self._calls.add(call)
            if self._cancel.is_set():  # cancelled while the call was being built
                call.abort("cancelled")
            elif self._stopped is not None:
                call.abort(SETTLED)
        for s in batch:
            s.endpoint = endpoint
            events.put(SampleStarted(s.index, s.model, s.seed))
        gate = self.engines.serial_gate(endpoint)
        try:
            held = self._hold(gate, call)
            try:
                with self._lock:
                    self._active[endpoint] = self._active.get(endpoint, 0) + 1
                try:
                    redo = self._draw(batch, call, events)
                finally:
                    with self._lock:
                        others = self._active[endpoint] - 1
                        self._active[endpoint] = others
            finally:
                if held:
                    gate.release()
        finally:
            with self._lock:
                self._calls.discard(call)
                self._retries.extend(call_retries(call))  # busy engines waited for (issue 22)
        if redo and call.aborted is None:  # fewer choices than asked
            self._note_n_ignored(endpoint, len(batch) - len(redo), len(batch))
        cut = [s for s in batch if s not in redo and s.error in CUT_REASONS]
        if cut and others > 0 and call.aborted is None:
            self.engines.interrupts(endpoint)
            with self._lock:
                self._redrawn[endpoint] = self._redrawn.get(endpoint, 0) + len(cut)
            redo = redo + cut
        if redo:
            for s in redo:
                _reset(s)
            with self._cond:
                stage.pending.extend(reversed(sorted(redo, key=lambda s: s.index)))
        for s in batch:
            if s not in redo:
                events.put(SampleFinished(s))
        return len(redo)

    def _hold(self, gate: threading.Lock | None, call: StreamCall) -> bool:
        """Wait for an endpoint's serial gate (None: no wait); give up when the call is
        aborted. True when the gate is held."""
        if gate is None:
            return False
        while not gate.acquire(timeout=0.1):
            if call.aborted is not None or self._halted():
                return False
        return True

    def _note_n_ignored(self, endpoint: str, got: int, asked: int) -> None:
        """The server at `endpoint` ignores `n`: ask it for one choice from now on, and
        say so once per endpoint (issue 19)."""
        self.engines.n_ignored(endpoint)
        with self._lock:
            if endpoint in self._n_noted:
                return
            self._n_noted.add(endpoint)
            self.notes.append(f"{endpoint} returned {got} of {asked} choices asked (it "
                              "ignores n); drew the rest one request each")

    def _redraw_notes(self) -> list[str]:
        """One note per endpoint whose streams were cut by other requests."""
        return [f"{endpoint} ended {n} stream(s) early when another request arrived "
                "(llama-cpp-python's server does so unless started with --interrupt_requests "
                "false); ran it one request at a time and drew those samples again"
                for endpoint, n in self._redrawn.items()]

    def _batch_size(self, stage: _Stage) -> int:
        """Samples to draw in the next request (call with the lock held): 1 where the
        server does not honour `n`; else, with a stopping rule, the free part of the wave
        (at most `concurrency` samples in flight), and without one an equal share of the
        stage's samples per worker."""
        pending = stage.pending
        if not self.engines.supports_n(pending[-1].model):
            return 1
        if self.early_stop != "off":
            return max(1, min(len(pending), stage.limit - stage.in_flight))
        return min(len(pending), -(-len(stage.samples) // self.concurrency))

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
                # the engine reports a token-limit cut, so any other reply is whole
                sample.answer, sample.no_answer = extract_with_reason(
                    sample.text, self.kind, self.choices, self.query,
                    whole=not sample.truncated)
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


def _reset(sample: Sample) -> None:
    """Clear a sample that will be drawn again."""
    sample.text, sample.thinking, sample.error = "", "", None
    sample.truncated, sample.choice, sample.endpoint = False, 0, ""


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
