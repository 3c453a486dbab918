"""The `avengers vote` and `avengers calibrate` subcommands: sampling real engines.

Both reach models through the same engine options: `--backend ollama|openai` and `--host`
for the default server (Ollama at `$OLLAMA_HOST` or 127.0.0.1:11434 unless told
otherwise), `--api-key-env` naming the variable that holds its key, and `--endpoints` for
per-model servers and replicas (see :mod:`avengers_core.backends.endpoints`).

`register(subparsers)` adds both; each handler returns the exit code. An unreachable host
is exit code 2 with one line `error: ...` naming the host; a vote where no sample gave an
answer is exit code 1 with one line `no answer: ...` saying why; Ctrl-C stops a vote at
once (exit code 130). Heavy imports stay inside the handlers so `avengers --help` is fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from avengers_core.backends import BACKENDS
from avengers_core.backends.trust import add_key_env_option, add_profile_embedder_options
from avengers_core.device import add_device_option
from avengers_core.errors import InputError

EXIT_INPUT = 2
EXIT_NO_ANSWER = 1
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C
SHOWN_CHARS = 80  # an answer printed in a progress or summary line


def add_engine_options(s: Any, key_flag: str = "--api-key-env") -> None:
    """The options that say where the models are served (shared by vote, calibrate and
    serve; `serve` names the engine key `--upstream-key-env`, its own --api-key-env being
    the key its clients send)."""
    s.add_argument("--backend", choices=BACKENDS, default="ollama",
                   help="protocol of --host: ollama (native API) or openai (any "
                        "OpenAI-compatible server: llama.cpp, vLLM, SGLang, LM Studio)")
    s.add_argument("--host", help="server URL (default: $OLLAMA_HOST or 127.0.0.1:11434 for "
                                  "ollama; $OPENAI_BASE_URL or 127.0.0.1:8000/v1 for openai)")
    s.add_argument(key_flag, dest="engine_key_env", metavar="NAME",
                   help="environment variable holding the server's API key")
    s.add_argument("--endpoints", metavar="FILE",
                   help="TOML/JSON file: per-model backend, URLs (replicas), engine model "
                        "name, api_key_env; overrides --backend/--host for those models")
    add_key_env_option(s)
    s.set_defaults(engine_key_flag=key_flag)
    s.add_argument("--max-tokens", type=int, help="cap on tokens per reply")
    s.add_argument("--think", choices=["on", "off", "low", "medium", "high"],
                   help="reasoning models: thinking off, on, or a level (default: the "
                        "model's own)")


def request_options(args: argparse.Namespace) -> dict[str, Any]:
    """Per-request options from `--max-tokens` and `--think`."""
    if args.max_tokens is not None and args.max_tokens < 1:
        raise InputError("--max-tokens must be at least 1")
    options: dict[str, Any] = {}
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.think is not None:
        options["think"] = {"on": True, "off": False}.get(args.think, args.think)
    return options


def engines_from_args(args: argparse.Namespace) -> Any:
    from avengers_core.backends.endpoints import Engines

    return Engines.from_args(args.backend, args.host, args.engine_key_env, args.endpoints,
                             key_option=getattr(args, "engine_key_flag", "--api-key-env"))


def register(subparsers: Any) -> None:
    """Add `vote` and `calibrate` to the `avengers` command's subparsers."""
    s = subparsers.add_parser("vote", help="route a query, then vote over samples of the "
                                           "routed models")
    s.add_argument("dir", help="profile folder written by `avengers fit`, or its .zip")
    s.add_argument("query")
    add_engine_options(s)
    s.add_argument("--samples", type=int, default=10, help="samples to draw (default 10)")
    s.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    s.add_argument("--top-n", type=int, default=1, help="spread samples over the top-n models")
    s.add_argument("--model-map", help="JSON object or JSON file: table name -> served model")
    add_profile_embedder_options(s)
    s.add_argument(
        "--kind",
        choices=["auto", "number", "choice", "text", "free"],
        default="auto",
        help="answer kind (auto: from the routed cluster's task)",
    )
    s.add_argument("--concurrency", type=int, default=4, help="parallel samples per model")
    s.add_argument(
        "--switch",
        type=float,
        metavar="SHARE",
        help="Model-Switch: sample the next model while the winner's share < SHARE",
    )
    s.add_argument("--early-stop", choices=["off", "decided", "confident"], default="decided",
                   help="stop sampling early: decided (default: once the samples left "
                        "cannot change the winner; same answer as all N), confident (once "
                        "the posterior probability that the leader is the majority reaches "
                        "--confidence, after 3 samples), off (draw all N)")
    s.add_argument("--confidence", type=float, default=0.95,
                   help="posterior probability at which --early-stop confident stops "
                        "(default 0.95, Adaptive-Consistency's)")
    add_device_option(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_vote)

    s = subparsers.add_parser("calibrate", help="score your models on labeled questions")
    s.add_argument("questions", help="gsm8k, llmrouter, or a .jsonl/.csv with question, answer")
    s.add_argument("--models", required=True, help="comma-separated model names (Ollama tags, "
                                                   "server model ids or endpoint names)")
    s.add_argument("--out", required=True, help="routing table to write (JSONL, resumable)")
    add_engine_options(s)
    s.add_argument("--limit", type=int, help="use only the first N questions")
    s.add_argument("--concurrency", type=int, default=1, help="questions in flight per model")
    s.set_defaults(func=cmd_calibrate)


def _error(message: str) -> int:
    from avengers_core.redact import scrub

    print(f"error: {scrub(message)}", file=sys.stderr)  # no URL credentials or keys
    return EXIT_INPUT


def _clip(text: str) -> str:
    """`text` on one line, at most SHOWN_CHARS characters (free-text answers can be long)."""
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def parse_model_map(value: str | None) -> dict[str, str]:
    """`--model-map`: a JSON object, or the path of a file holding one."""
    if not value:
        return {}
    path = Path(value)
    where = "--model-map"
    text = value
    if not value.lstrip().startswith("{"):
        if not path.is_file():
            raise InputError(f"--model-map: {value!r} is neither a JSON object nor a file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
    ):
        raise InputError(f"{where}: expected a JSON object of model name -> Ollama tag")
    return obj


def profile_embedder(embedder_id: str, engines: Any):
    """The profile's embedder; an Ollama one is asked on the Ollama host of the samples, an
    `openai:<name>` one on the servers the endpoints file gives that name."""
    from avengers_core.embed.load import get_embedder
    from avengers_core.embed.ollama import OllamaEmbedder

    default = engines.default
    if embedder_id.startswith("ollama:") and default is not None and default.name == "ollama":
        return OllamaEmbedder(embedder_id.split(":", 1)[1], host=default.host)
    return get_embedder(embedder_id, endpoints=engines.endpoints)


def embedder_for_profile(args: argparse.Namespace, router: Any, engines: Any) -> Any:
    """The embedder for the profile `router` loaded from `args.dir`: `--embedder` when
    given, else the profile's own, unless that is a server the user did not trust
    (InputError naming it, see :mod:`avengers_core.backends.trust`). Contacts nothing itself."""
    from avengers_core.backends.trust import profile_embedder_name

    default = engines.default
    host = default.host if default is not None and default.name == "ollama" else None
    name = profile_embedder_name(router.embedder_id, args.dir,
                                 named=getattr(args, "embedder", None),
                                 trusted=getattr(args, "trust_profile_embedder", False),
                                 ollama_host=host, endpoints=engines.endpoints)
    if name != router.embedder_id:
        print(f"note: embedding with {name} (the profile was fitted with "
              f"{router.embedder_id})", file=sys.stderr)
    return profile_embedder(name, engines)


def available_models(engines: Any) -> list[str]:
    """The models the engines serve (notes on skipped replicas go to stderr).
    Raises BackendUnavailable when no server answers."""
    from avengers_core.redact import scrub

    models = engines.list_models()
    for note in engines.notes:
        print(f"note: {scrub(note)}", file=sys.stderr)
    return models


def remap_command(args: argparse.Namespace, routed: list[str], served: list[str]) -> str:
    """The command line of this vote (`args.argv`, else `sys.argv`) with a `--model-map`
    that maps each routed model to a served one (a close tag where one fits, else the first
    served model, embedding models apart), quoted for a POSIX shell (issue 19, item 4)."""
    import shlex

    from avengers_core.backends.model_names import map_models

    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    if "--model-map" in argv:  # replace the user's own map
        i = argv.index("--model-map")
        del argv[i:i + 2]
    argv = [a for a in argv if not a.startswith("--model-map=")]
    chat = [m for m in served if "embed" not in m.lower()] or served  # not an embedder
    guess = map_models(routed, chat)
    mapping = {m: guess[m] or chat[0] for m in routed}
    return shlex.join(["avengers", *argv, "--model-map", json.dumps(mapping)])


def cmd_vote(args: argparse.Namespace) -> int:
    from avengers_core import jsonsafe
    from avengers_core.backends import BackendUnavailable
    from avengers_core.pipeline import DEFAULT_SWITCH_THRESHOLD, Pipeline
    from avengers_core.routing.profile import check_embedder, load_profile
    from avengers_core.vote.events import SampleFinished, Settled
    from avengers_core.vote.tally import failure_summary

    if args.samples < 1 or args.top_n < 1 or args.concurrency < 1:
        raise InputError("--samples, --top-n and --concurrency must be at least 1")
    if args.temperature <= 0:
        raise InputError(f"--temperature must be > 0 so samples differ, got {args.temperature}")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must lie strictly between 0 and 1, got {args.confidence}")
    mapping = parse_model_map(args.model_map)
    options = request_options(args)
    engines = engines_from_args(args)
    try:
        local = available_models(engines)
    except BackendUnavailable as e:
        return _error(str(e))
    router = load_profile(args.dir)
    emb = embedder_for_profile(args, router, engines)
    check_embedder(router, emb, args.dir)
    pipeline = Pipeline(router, emb, engines, mapping)
    plan = pipeline.plan(args.query, local, top_n=args.top_n, switch=args.switch, kind=args.kind)
    res, models, kind, strategy = plan.route, plan.models, plan.kind, plan.strategy
    cut = pipeline.query_notes(args.query)  # issue 22: a cut query
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if not models:
        first = res.ranking[0] if res.ranking else "a model"
        pull = f"`ollama pull <tag>` for {first}, " if engines.default.name == "ollama" else ""
        fix = ""
        if local:  # the exact command that maps every routed model to what is served
            fix = f"; to use what it serves: {remap_command(args, res.ranking, local)}"
        return _error(
            f"none of the routed models is available on {engines.describe()} "
            f"(available: {', '.join(local) or 'none'}); serve one ({pull}or an endpoint) "
            f"or pass --model-map{fix}"
        )
    run = pipeline.vote(
        plan, args.query, samples=args.samples, temperature=args.temperature,
        concurrency=args.concurrency, options=options,
        early_stop=args.early_stop, confidence=args.confidence,
        threshold=args.switch if args.switch is not None else DEFAULT_SWITCH_THRESHOLD,
    )
    run.notes.extend(cut)  # printed with the run's own notes at the end, and in --json
    print(f"routed to {', '.join(models)} (kind {kind}, task {res.task})", file=sys.stderr)
    # the total is known up front, except for Model-Switch, which stops when sure enough
    total = f"≤{args.samples * len(models)}" if strategy == "switch" else str(args.samples)
    done = 0
    try:
        for ev in run.events():
            if isinstance(ev, SampleFinished):
                done += 1
                s = ev.sample
                what = f"failed: {s.error}" if s.error else f"answer {_clip(str(s.answer))}"
                if s.no_answer:
                    what = f"no answer ({s.no_answer})"
                print(f"[{done}/{total}] {s.model} seed {s.seed} @ {s.endpoint}: {what}",
                      file=sys.stderr)
            elif isinstance(ev, Settled):
                print(f"settled ({ev.rule}) after {ev.drawn} of {ev.asked} samples"
                      + (f"; cancelled {len(ev.dropped)} in flight" if ev.dropped else ""),
                      file=sys.stderr)
    except KeyboardInterrupt:  # the event stream cancelled every request on its way out
        print(f"stopped: {done} of {total} samples had finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    result = run.result
    assert result is not None
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    t = result.tally
    if args.json:
        print(jsonsafe.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(
            f"answer: {_clip(str(result.answer))}  (confidence {result.confidence:.0%}, "
            f"{t.votes.get(result.answer, 0) if result.answer else 0}/{t.counted} votes, "
            f"{t.failed} failed)"
            + (f"  settled after {result.drawn} of {result.asked} ({result.stopped})"
               if result.stopped in ("decided", "confident") else "")
        )
        for answer, n in t.votes.items():
            print(f"  {n:3d}  {answer[:SHOWN_CHARS]!r}")
    if result.answer is None:
        n = len(result.samples)
        if t.failed == n:
            why = f"all {n} samples failed: {failure_summary(result.samples)}"
        else:
            why = f"none of the {n} samples gave an answer of kind {kind} (try --kind free)"
            if t.failed:
                why += f"; {t.failed} failed: {failure_summary(result.samples)}"
        print(f"no answer: {why}", file=sys.stderr)
        return EXIT_NO_ANSWER
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from avengers_core.backends import BackendUnavailable
    from avengers_core.calibrate.questions import load_questions
    from avengers_core.calibrate.run import calibrate

    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    options = request_options(args)
    engines = engines_from_args(args)
    qs = load_questions(args.questions, args.limit)
    for note in qs.notes:
        print(f"note: {note}", file=sys.stderr)

    def progress(done: int, total: int, message: str) -> None:
        print(f"\r[{done}/{total}] {message}".ljust(60), end="", file=sys.stderr, flush=True)

    try:
        available_models(engines)
        report = calibrate(
            qs,
            args.models.split(","),
            args.out,
            client=engines,
            concurrency=args.concurrency,
            progress=progress,
            options=options,
        )
    except BackendUnavailable as e:
        return _error(str(e))
    print(file=sys.stderr)
    print(f"wrote {report.out} ({report.ran} new, {report.resumed} resumed)")
    for model, acc in report.accuracy().items():
        print(f"  {acc:6.1%}  {model}  ({report.correct[model]}/{report.graded[model]})")
    if report.errors:
        print(
            f"{len(report.errors)} failed requests (not written; rerun to retry):", file=sys.stderr
        )
        for err in report.errors[:5]:
            print(f"  {err}", file=sys.stderr)
    return 0
