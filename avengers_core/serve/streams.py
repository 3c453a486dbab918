"""Blocking work under an asyncio server: a thread bridge, admission control, and a
streaming response that notices a client hang-up at once.

Why: the engines and the vote are blocking (threads and sockets). Each request's work runs
in its own thread; its results reach the event loop through :func:`bridged`, which also
ticks while nothing arrives (so a handler can send keep-alives and check the client).
Leaving the iteration early (client gone) calls the work's `cancel`, which aborts its
upstream requests. :class:`Admission` bounds how many requests run and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

TICK_S = 0.25
"""Seconds between ticks while a request's work is silent (client checks, keep-alives)."""
THREAD_PREFIX = "avengers-serve"


@dataclass(frozen=True)
class Tick:
    """Nothing arrived for TICK_S seconds."""


@dataclass(frozen=True)
class Finished:
    """The work returned `value`: the last item of a bridge."""

    value: Any


async def bridged(
    work: Callable[[Callable[[Any], None]], Any],
    cancel: Callable[[], None],
    tick: float = TICK_S,
) -> AsyncIterator[Any]:
    """Run `work(put)` in a new thread; yield what it puts, a :class:`Tick` after each
    `tick` seconds of silence, then :class:`Finished` with its return value. An exception
    in `work` is raised here. Closing the iterator early calls `cancel()` (from the loop;
    it must make `work` return soon)."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def post(kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
            loop.call_soon_threadsafe(inbox.put_nowait, (kind, value))

    def target() -> None:
        try:
            post("done", work(lambda item: post("item", item)))
        except BaseException as e:  # noqa: BLE001 - handed to the loop, raised there
            post("error", e)

    thread = threading.Thread(target=target, name=THREAD_PREFIX, daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(inbox.get(), tick)
            except asyncio.TimeoutError:
                yield Tick()
                continue
            if kind == "item":
                yield value
            elif kind == "done":
                yield Finished(value)
                return
            else:
                raise value
    finally:
        if thread.is_alive():
            cancel()


class QueueFull(Exception):
    """Every slot is busy and the queue is full."""


class Slot:
    """A held place among the running requests; `release()` may be called more than once."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


class Admission:
    """At most `limit` requests run at once; up to `queue` more wait for a slot; beyond
    that :meth:`enter` raises QueueFull at once (the client gets 429 or 503)."""

    def __init__(self, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise ValueError("limit must be ≥ 1 and queue ≥ 0")
        self.limit = limit
        self.queue = queue
        self.waiting = 0
        self._semaphore: asyncio.Semaphore | None = None

    async def enter(self) -> Slot:
        """Wait for a slot (in the queue); QueueFull when the queue is full."""
        if self._semaphore is None:  # made in the server's loop
            self._semaphore = asyncio.Semaphore(self.limit)
        if self._semaphore.locked() and self.waiting >= self.queue:
            raise QueueFull
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        return Slot(self._semaphore)


class LiveStream(StreamingResponse):
    """A streaming response that stops its body as soon as the client hangs up (whatever
    ASGI version the server speaks: Starlette otherwise notices only on the next write)
    and then releases `slot`."""

    def __init__(self, content: AsyncIterator[bytes | str], slot: Slot | None = None,
                 **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client left mid-write
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            if self.slot is not None:
                self.slot.release()
