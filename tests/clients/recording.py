"""`avengers serve` for tests that must see what a client sent: its ASGI app wrapped in
:class:`Recorder`, run as tests/serve_util.py runs it."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from avengers_core.cli.commands import build_parser
from avengers_core.cli.serve import prepare
from tests.support.net import free_port


class Recorder:
    """ASGI middleware that keeps (path, JSON body or None) of every POST, then hands the
    request on unchanged (the body replayed, later messages such as a disconnect passed
    through)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, Any]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body came
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            self.requests.append((scope["path"], json.loads(body)))
        except ValueError:
            self.requests.append((scope["path"], None))
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@contextlib.contextmanager
def recorded_serving(argv: list[str]) -> Iterator[tuple[str, Recorder]]:
    """Run `avengers serve ARGV` behind a Recorder until the block ends; yields its base URL and
    the recorder. Raises TimeoutError when it does not start within 20 s."""
    recorder = Recorder(prepare(build_parser().parse_args(["serve", *argv])))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name="avengers-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise TimeoutError("avengers serve did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        server.should_exit = True
        thread.join(10)
