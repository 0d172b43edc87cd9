"""Admission control (a concurrency limit with a bounded queue) and request body limits."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Overloaded(Exception):
    """Every slot is busy and the queue is full: answer 429."""


class _TooLarge(BaseException):
    """Raised inside the app when the body it reads grows over the limit (a BaseException so that no
    ``except Exception`` on the way, FastAPI's body parsing included, turns it into another answer)."""


class AdmissionGate:
    """``max_concurrency`` units held at once (a request holds ``weight`` of them: with micro-batching, its checks), and
    ``max_queue`` more requests waiting, first come first served; the rest are refused at once. A request heavier than
    the whole gate holds all of it."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self.used = 0  # units held
        self.running = 0  # requests holding units
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.max_concurrency:
            weight, future = self._waiters.popleft()
            if not future.done():
                self.used += weight
                future.set_result(None)

    @asynccontextmanager
    async def admit(self, weight: int = 1) -> AsyncIterator[None]:
        """Hold ``weight`` units for the body of the ``async with``; raises :class:`Overloaded` when the queue is
        full."""
        weight = min(max(weight, 1), self.max_concurrency)
        if self._waiters or self.used + weight > self.max_concurrency:
            if len(self._waiters) >= self.max_queue:
                raise Overloaded
            entry = (weight, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await entry[1]
            except BaseException:  # cancelled: leave the queue, or give back what was granted meanwhile
                if entry in self._waiters:
                    self._waiters.remove(entry)
                elif entry[1].done() and not entry[1].cancelled():
                    self.used -= weight
                self._wake()
                raise
        else:
            self.used += weight
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.used -= weight
            self._wake()


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared, or as it arrives) gets 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = {"error": {"message": f"request body over {self.limit} bytes", "type": "invalid_request_error",
                           "code": "request_too_large", "param": None}}  # fmt: skip
        await JSONResponse(error, status_code=413)(scope, receive, send)
