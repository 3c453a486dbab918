"""The `avengers` command line: data, fit, route, evaluate (and vote, calibrate).

Heavy libraries are imported inside the handlers, so `avengers --help` answers at once.
Bad input, or a file that cannot be read or written, exits with code 2 and one line
`error: ...` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from avengers_core import config
from avengers_core.errors import InputError

EXIT_INPUT = 2
PRIOR = dict(choices=("auto", "task", "global"), default="auto",
             help="what cluster scores shrink toward: each model's global mean, the query's "
                  "task mixture, or auto (chosen by cross-validation; default)")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line `error: ...` and exit code 2, like bad input;
    an unknown flag is named with its subcommand and the closest known flag."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"error: {self.prog}: {message}{self._command_hint(message)}\n")

    def _command_hint(self, message: str) -> str:
        """" (did you mean route?)" for a misspelt command (argparse's "invalid choice")."""
        import difflib
        import re

        m = re.match(r"argument \w+: invalid choice: '([^']*)'", message)
        commands = list(self._subparsers_by_name())
        close = difflib.get_close_matches(m.group(1), commands, n=1, cutoff=0.6) if m else []
        return f" (did you mean {close[0]}?)" if close else ""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            sub = self._subparsers_by_name().get(getattr(ns, "command", None) or "", self)
            flag = next((a for a in extras if a.startswith("-")), None)
            if flag is None:
                sub.error(f"unexpected argument {extras[0]!r}")
            hint = closest_flag(flag.split("=", 1)[0], sub)
            sub.error(f"unknown flag {flag}" + (f" (did you mean {hint}?)" if hint else "")
                      + f"; see `{sub.prog} --help`")
        return ns

    def _subparsers_by_name(self) -> dict[str, argparse.ArgumentParser]:
        return next((dict(a.choices) for a in self._actions
                     if isinstance(a, argparse._SubParsersAction)), {})


def closest_flag(flag: str, parser: argparse.ArgumentParser) -> str | None:
    """The known flag of `parser` closest to the unknown `flag`: by spelling (difflib), else
    the flag whose help mentions the word (`--clusters` -> `--k`, "number of clusters")."""
    import difflib
    import re

    flags = {o: a.help or "" for a in parser._actions for o in a.option_strings
             if o.startswith("--") and o != "--help"}
    close = difflib.get_close_matches(flag, list(flags), n=1, cutoff=0.6)
    if close:
        return close[0]
    words = [w.rstrip("s") for w in re.split(r"[-_]+", flag.lower()) if len(w) > 2]
    return next((o for w in words for o, h in flags.items()
                 if re.search(rf"\b{re.escape(w)}", h.lower())), None)


def _bar(stream=sys.stderr) -> Callable[[int, int, str], None]:
    """A progress callback drawing one updating line on stderr."""
    state = {"msg": None}

    def progress(done: int, total: int, message: str) -> None:
        if message != state["msg"] and state["msg"] is not None:
            stream.write("\n")
        state["msg"] = message
        frac = done / total if total else 1.0
        fill = int(frac * 30)
        stream.write(f"\r{message}: [{'#' * fill}{'.' * (30 - fill)}] {done}/{total}")
        if done >= total:
            stream.write("\n")
            state["msg"] = None
        stream.flush()

    return progress


def _table_name(table_arg: str) -> str:
    """`table_arg` when it is a file or a demo name; else InputError suggesting the closest
    demo name ("did you mean llmrouter?")."""
    import difflib
    from pathlib import Path

    from avengers_core.data.datasets import TABLES

    if table_arg in TABLES or Path(table_arg).exists() or Path(table_arg).suffix:
        return table_arg  # a file: load_table names what is wrong with it
    close = difflib.get_close_matches(table_arg, TABLES, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}?" if close else f"demo tables: {', '.join(TABLES)}"
    raise InputError(f"{table_arg}: no such file or demo table ({hint})")


def _embedded(table_arg: str, embedder: str, k: int, progress, endpoints: str | None = None):
    """Load and check the table (before the slow part), then embed its queries."""
    from avengers_core.data.load import load_table
    from avengers_core.data.table import check_enough_rows
    from avengers_core.embed.cache import embed_texts
    from avengers_core.embed.load import get_embedder
    from avengers_core.embed.window import cut_report

    if k < 1:
        raise InputError(f"--k must be at least 1, got {k}")
    table = load_table(_table_name(table_arg))
    check_enough_rows(table, k)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    emb = get_embedder(embedder, endpoints=endpoints)
    x = embed_texts(table.queries, emb, progress=progress)
    report = cut_report(emb, table.queries)  # issue 22: say how many queries were cut
    if report is not None and report.note():
        print(f"note: {report.note()}", file=sys.stderr)
    return table, emb, x


def cmd_data(args: argparse.Namespace) -> int:

    from avengers_core.data import datasets

    if args.dir:
        config.set_data_dir(args.dir)
    status = datasets.fetch(progress=_bar())
    for path, state in status.items():
        print(f"{state:10} {datasets.data_dir() / path}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from avengers_core.present.labels import cluster_labels
    from avengers_core.routing.effective_k import effective_k_note
    from avengers_core.routing.profile import save_profile
    from avengers_core.routing.routers.avengers import AvengersRouter
    from avengers_core.routing.routers.base import RouterConfig

    table, emb, x = _embedded(args.table, args.embedder, args.k, _bar(), args.endpoints)
    config = RouterConfig(k=args.k, seed=args.seed, prior=args.prior)
    if args.paper:
        config = RouterConfig.paper(k=args.k, seed=args.seed)
    router = AvengersRouter.fit(table, x, config, embedder_id=emb.id, progress=_bar())
    k = router.config.k  # the effective K: fewer than asked when clusters were dropped
    names = cluster_labels(table.queries, router.labels, k)  # as the app names them
    out = save_profile(router, args.out, labels=names)
    note = effective_k_note(args.k, k)
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(f"fitted K = {k} on {len(table)} queries × {len(table.models)} models "
          f"(prior {router.config.prior}, shrinkage {router.config.shrinkage:g}); saved to {out}")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from avengers_core import jsonsafe
    from avengers_core.embed.load import get_embedder
    from avengers_core.embed.window import query_note
    from avengers_core.routing.profile import check_embedder, load_profile, saved_labels

    router = load_profile(args.dir)
    names = saved_labels(args.dir)
    changes = {"top_k": args.top_k, "top_n": args.top_n, "beta": args.beta, "alpha": args.alpha}
    router = router.with_config(**{k: v for k, v in changes.items() if v is not None})
    emb = get_embedder(_route_embedder(args, router.embedder_id), endpoints=args.endpoints)
    check_embedder(router, emb, args.dir)
    res = router.route(args.query, embedder=emb, names=names)
    expl = res.explanation
    notes = [n for n in [query_note(emb, args.query)] if n]  # issue 22: a cut query
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:  # the router's own explanation (routing/explain.py), keys kept since 0.1
        print(jsonsafe.dumps({**expl.to_json(), "notes": notes}))
        return 0
    print(f"models: {', '.join(res.models)}")
    print(f"why:    {expl.reason()}")
    for c in expl.clusters:
        label = f"  {c.label}" if c.label else ""
        print(f"  cluster {c.id:>3}  p = {c.p:.3f}  cos = {c.similarity:.3f}  "
              f"best here: {c.best_model}{label}")
    for m, s in res.scores.items():
        print(f"  {s:8.4f}  {m}")
    return 0


def _route_embedder(args: argparse.Namespace, profile_id: str) -> str:
    """The embedder `route` uses: `--embedder`, or the profile's own unless it is a server
    the user did not trust (InputError naming it, see avengers_core.backends.trust)."""
    from avengers_core.backends.endpoints import load_endpoints
    from avengers_core.backends.trust import profile_embedder_name

    endpoints = load_endpoints(args.endpoints) if args.endpoints else None
    name = profile_embedder_name(profile_id, args.dir, named=args.embedder,
                                 trusted=args.trust_profile_embedder, endpoints=endpoints)
    if name != profile_id:
        print(f"note: embedding with {name} (the profile was fitted with {profile_id})",
              file=sys.stderr)
    return name


def cmd_evaluate(args: argparse.Namespace) -> int:
    from avengers_core import jsonsafe
    from avengers_core.routing.evaluate import METHODS, evaluate, fit_split, sweep_k, sweep_models
    from avengers_core.routing.routers.base import RouterConfig

    if not 0.0 < args.test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1, got {args.test_size}")
    table, _, x = _embedded(args.table, args.embedder, args.k, _bar(), args.endpoints)
    config = RouterConfig(k=args.k, prior=args.prior)
    fitted = fit_split(table, x, config, args.test_size, args.seed)  # one fit for both below
    res = evaluate(table, x, fitted=fitted)
    if args.sweeps:
        ks = [k for k in (8, 16, 32, 64, 128, 256) if k <= len(table) * (1 - args.test_size)]
        res["sweep_k"] = sweep_k(table, x, ks, config, args.test_size, args.seed, _bar())
        res["sweep_models"] = sweep_models(table, x, fitted=fitted)
    if args.json:
        print(jsonsafe.dumps(res))
        return 0
    print(f"{res['n_train']} train / {res['n_test']} test queries, K = {args.k}, "
          f"shrinkage {res['shrinkage']:g}, best single = {res['best_single_model']}")
    for m in METHODS:
        print(f"  {m:12} {res[m]:.4f}")
    for row in res.get("sweep_k", []):
        print(f"  K = {row['k']:4}: router {row['router']:.4f}, paper {row['paper']:.4f}")
    for row in res.get("sweep_models", []):
        print(f"  {row['n']} models: router {row['router']:.4f} ({', '.join(row['models'])})")
    return 0


def _embedder_options(s: argparse.ArgumentParser, embedder: bool = True) -> None:
    """--embedder (fit, evaluate), --endpoints and --device: how and where queries embed."""
    from avengers_core.backends.trust import add_key_env_option
    from avengers_core.device import add_device_option
    from avengers_core.embed.base import DEFAULT_EMBEDDER

    if embedder:
        s.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                       help="minilm, a sentence-transformers name/path, ollama:<model>, "
                            "openai:<model>@<base URL> or openai:<name in --endpoints>")
    s.add_argument("--endpoints", metavar="FILE",
                   help="endpoints file (TOML/JSON) naming an openai:<name> embedder's servers")
    add_key_env_option(s)
    add_device_option(s)


def build_parser() -> argparse.ArgumentParser:
    from avengers_core.backends.trust import add_profile_embedder_options
    from avengers_core.routing.cluster import DEFAULT_K

    p = Parser(
        prog="avengers",
        description="The Avengers routing recipe: embed, cluster, score, route, vote.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("data", help="fetch and verify the demo datasets")
    s.add_argument("--dir", help="data directory (default: $AVENGERS_DATA_DIR or ./data)")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("fit", help="fit a router on a routing table and save its profile")
    s.add_argument("table", help="a table file (.jsonl/.csv/.parquet) or a demo name (llmrouter)")
    s.add_argument("--out", required=True, help="profile folder to write")
    s.add_argument("--k", type=int, default=DEFAULT_K, help="number of clusters (default 64)")
    _embedder_options(s)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--paper", action="store_true",
                   help="paper-exact: nearest cluster, raw accuracies (no shrinkage)")
    s.add_argument("--prior", **PRIOR)
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("route", help="route a query with a saved profile")
    s.add_argument("dir", help="profile folder written by `avengers fit`, or its .zip")
    s.add_argument("query", help="the query text to route (quote it)")
    s.add_argument("--top-k", type=int, help="clusters to fuse (default: the profile's)")
    s.add_argument("--top-n", type=int, help="how many models to choose, best first "
                                             "(default: the profile's, 1)")
    s.add_argument("--beta", type=float, help="softmax sharpness over cosine distance")
    s.add_argument("--alpha", type=float, help="1 = performance only, 0 = cost only")
    _embedder_options(s, embedder=False)
    add_profile_embedder_options(s)
    s.add_argument("--json", action="store_true",
                   help="print the decision and its explanation as one JSON object")
    s.set_defaults(func=cmd_route)

    s = sub.add_parser("evaluate", help="held-out comparison with the baselines")
    s.add_argument("table", help="a table file (.jsonl/.csv/.parquet) or a demo name "
                                 "(llmrouter)")
    s.add_argument("--k", type=int, default=DEFAULT_K, help="number of clusters (default 64)")
    s.add_argument("--test-size", type=float, default=0.3,
                   help="share of the queries held out for scoring, in (0, 1) (default 0.3)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the train/test split and of K-means (default 0)")
    _embedder_options(s)
    s.add_argument("--prior", **PRIOR)
    s.add_argument("--sweeps", action="store_true",
                   help="also sweep K and the number of selected models (paper's Fig. 2, 3)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    from avengers_core.cli import engines as cli_engines
    from avengers_core.cli import serve as cli_serve

    cli_engines.register(sub)
    cli_serve.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from avengers_core.backends.trust import allow_key_envs
    from avengers_core.device import use_device
    from avengers_core.redact import install_log_scrubbing, scrub

    args = build_parser().parse_args(argv)
    install_log_scrubbing()  # notes logged on the way carry no secret
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # for suggested commands
    try:
        # key variables the user named may be used by an endpoints file (issue 20)
        allow_key_envs([*(getattr(args, "allow_key_env", None) or []),
                        getattr(args, "engine_key_env", None)])
        use_device(getattr(args, "device", None))
        return int(args.func(args) or 0)
    except (InputError, OSError) as e:
        msg = str(e)
        if isinstance(e, OSError):  # e.g. permission denied on --out
            msg = (f"{e.filename}: " if e.filename else "") + (e.strerror or msg)
        print("error: " + " ".join(scrub(msg).split()), file=sys.stderr)  # one line, no secret
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

