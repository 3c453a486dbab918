"""`avengers serve` in-process for tests: the CLI's own argument parsing and wiring
(`cli_serve.prepare`), run by uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import ollama
import openai
import uvicorn

from avengers_core.cli.commands import build_parser
from avengers_core.cli.serve import prepare
from avengers_core.serve.limits import Limits, server_config
from tests.support.net import free_port


@contextlib.contextmanager
def serving(argv: list[str], limits: Limits | None = None) -> Iterator[str]:
    """Run `avengers serve ARGV` (without --bind/--port) until the block ends, with the
    command's own server configuration (`limits`: its defaults, or these timeouts and
    cap); yields its base URL. Raises TimeoutError when it does not start within 120 s
    (generous: a loaded machine; the wait ends as soon as it listens)."""
    args = build_parser().parse_args(["serve", *argv])
    limits = limits or Limits(max_connections=args.max_connections)
    app = prepare(args, limits)
    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, limits,
                                          log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="avengers-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise TimeoutError("avengers serve did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def openai_reply(res: Any, stream: bool) -> tuple[str, dict[str, Any]]:
    """The text and `avengers` field of an `openai` client reply, streamed (every chunk
    read; the last must finish, with "stop" or, cut by the token limit, "length") or
    whole."""
    if not stream:
        return res.choices[0].message.content, res.model_extra["avengers"]
    chunks = list(res)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    return ("".join(c.choices[0].delta.content or "" for c in chunks),
            chunks[-1].model_extra["avengers"])


def clients(url: str, timeout: float) -> tuple[openai.OpenAI, ollama.Client]:
    """The official clients for the server at `url` (the openai one never retries)."""
    return (openai.OpenAI(base_url=f"{url}/v1", api_key="-", max_retries=0, timeout=timeout),
            ollama.Client(host=url, timeout=timeout))
