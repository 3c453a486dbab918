"""The `avengers serve` subcommand: the router behind the Ollama and OpenAI APIs.

    avengers serve DIR [--bind 127.0.0.1] [--port 11500] [--backend ollama|openai] [--host URL]
                       [--endpoints FILE] [--model-map JSON|FILE] [--samples 10]
                       [--api-key-env NAME] [--allowed-hosts NAMES] [--allowed-origins ORIGINS]

The engine options are `vote`'s (:mod:`avengers_core.cli.engines`), except that the key of
the default engine is `--upstream-key-env`: `--api-key-env` names the variable holding the
key this server's clients must send. Binding anywhere but loopback requires it. Who else may
call it (Host and Origin checks, CORS, timeouts, connection cap): docs/SERVE.md, "Security",
and :mod:`avengers_core.serve.guard`.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from avengers_core.backends.trust import add_profile_embedder_options
from avengers_core.cli.engines import (
    add_engine_options,
    available_models,
    embedder_for_profile,
    engines_from_args,
    parse_model_map,
    request_options,
)
from avengers_core.device import add_device_option
from avengers_core.errors import InputError

MAX_CONNECTIONS = 128  # avengers_core.serve.limits.MAX_CONNECTIONS, without importing uvicorn

DEFAULT_PORT = 11500


def register(subparsers: Any) -> None:
    """Add `serve` to the `avengers` command's subparsers (imports nothing heavy, so
    `avengers --help` stays fast)."""
    s = subparsers.add_parser("serve", help="serve the router as a model to Ollama and "
                                            "OpenAI clients")
    s.add_argument("dir", help="profile folder written by `avengers fit`, or its .zip")
    s.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs "
                        "--api-key-env)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    add_engine_options(s, key_flag="--upstream-key-env")
    s.add_argument("--model-map", help="JSON object or JSON file: table name -> served model")
    s.add_argument("--samples", type=int, default=10,
                   help="samples per vote for the `avengers` model (default 10; capped, "
                        "see docs/SERVE.md)")
    s.add_argument("--top-n", type=int, default=1, help="spread samples over the top-n models")
    s.add_argument("--concurrency", type=int, default=4, help="parallel samples per vote")
    s.add_argument("--early-stop", choices=["off", "decided", "confident"], default="decided",
                   help="stop a vote's sampling early, as `avengers vote --early-stop` "
                        "(default decided)")
    s.add_argument("--confidence", type=float, default=0.95,
                   help="posterior probability at which --early-stop confident stops")
    s.add_argument("--api-key-env", metavar="NAME",
                   help="environment variable holding the key clients must send as "
                        "`Authorization: Bearer <key>`")
    s.add_argument("--max-concurrent", type=int, default=8,
                   help="chat requests served at once (default 8)")
    s.add_argument("--max-queue", type=int, default=32,
                   help="chat requests waiting beyond those; more get 429/503 (default 32)")
    s.add_argument("--route-each-turn", action="store_true",
                   help="route every turn on its last user message (default: a conversation "
                        "is routed by its first user message, so it keeps its model)")
    s.add_argument("--keepalive", type=float,
                   help="seconds between keep-alives while a vote runs (default 5)")
    s.add_argument("--allowed-hosts", metavar="NAMES", action="append",
                   help="host names clients may use besides localhost and loopback addresses "
                        "(comma-separated, repeatable; e.g. a reverse proxy's name)")
    s.add_argument("--allowed-origins", metavar="ORIGINS", action="append",
                   help="browser origins allowed besides Ollama's local defaults, e.g. "
                        "http://192.168.1.5:3000 for Open WebUI on another machine "
                        "(comma-separated, repeatable, * as a wildcard; also "
                        "$AVENGERS_ALLOWED_ORIGINS)")
    s.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help=f"open connections at most; more get 503 (default {MAX_CONNECTIONS})")
    add_profile_embedder_options(s)
    add_device_option(s)
    s.set_defaults(func=cmd_serve)


def _loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def prepare(args: argparse.Namespace, limits: Any = None) -> Any:
    """Check the arguments, load the profile, reach the engines and build the ASGI app
    (its body timeout from `limits`, a serve.limits.Limits; default: the defaults).
    Raises InputError (bad arguments, no key for a public bind) and BackendUnavailable."""
    from avengers_core.backends.endpoints import api_key
    from avengers_core.routing.profile import check_embedder, load_profile
    from avengers_core.serve.app import KEEPALIVE_S, build_app
    from avengers_core.serve.guard import BODY_TIMEOUT_S, env_origins, split_list
    from avengers_core.serve.service import MAX_SAMPLES, ServeConfig, Service

    key = api_key(args.api_key_env)
    if not _loopback(args.bind) and key is None:
        raise InputError(f"--bind {args.bind}: listening beyond this machine needs "
                         "--api-key-env (clients then send that key as a Bearer token)")
    keepalive = KEEPALIVE_S if args.keepalive is None else args.keepalive
    if args.max_concurrent < 1 or args.max_queue < 0 or keepalive <= 0:
        raise InputError("--max-concurrent must be ≥ 1, --max-queue ≥ 0, --keepalive > 0")
    if args.top_n < 1 or args.concurrency < 1:
        raise InputError("--top-n and --concurrency must be at least 1")
    if args.max_connections < 1:
        raise InputError("--max-connections must be at least 1")
    if not 1 <= args.samples <= MAX_SAMPLES:  # before the engines are asked (issue 19)
        raise InputError(f"--samples must be from 1 to {MAX_SAMPLES}, got {args.samples}")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must lie strictly between 0 and 1, got {args.confidence}")
    config = ServeConfig(samples=args.samples, concurrency=args.concurrency, top_n=args.top_n,
                         options=request_options(args), mapping=parse_model_map(args.model_map),
                         route_each_turn=args.route_each_turn, early_stop=args.early_stop,
                         confidence=args.confidence)
    engines = engines_from_args(args)
    router = load_profile(args.dir)
    embedder = embedder_for_profile(args, router, engines)
    check_embedder(router, embedder, args.dir)
    available_models(engines)
    service = Service(router, embedder, engines, config)
    return build_app(service, api_key=key, max_concurrent=args.max_concurrent,
                     max_queue=args.max_queue, keepalive_s=keepalive,
                     allowed_hosts=split_list(args.allowed_hosts or []),
                     allowed_origins=[*split_list(args.allowed_origins or []), *env_origins()],
                     check_host=_loopback(args.bind),
                     body_timeout_s=limits.body_timeout_s if limits else BODY_TIMEOUT_S)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from avengers_core.backends import BackendUnavailable
    from avengers_core.redact import install_log_scrubbing
    from avengers_core.serve.limits import Limits, server_config

    if args.max_connections < 1:
        raise InputError("--max-connections must be at least 1")
    limits = Limits(max_connections=args.max_connections)
    try:
        app = prepare(args, limits)
    except BackendUnavailable as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"serving models avengers, avengers-route and the engines' own at "
          f"http://{host}:{args.port} (OpenAI API under /v1, Ollama API under /api)",
          file=sys.stderr, flush=True)
    config = server_config(app, args.bind, args.port, limits, log_level="warning",
                           timeout_graceful_shutdown=5)
    install_log_scrubbing()  # after uvicorn set its handlers up: no secret in a log line
    uvicorn.Server(config).run()
    return 0
