"""Admission control (a concurrency limit with a bounded queue) and request body limits."""

from __future__ import annotations

import asyncio
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
    """``max_concurrency`` holders at once, ``max_queue`` more waiting; the rest are refused at once."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self._slots = asyncio.Semaphore(max_concurrency)
        self.running = 0
        self.waiting = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``; raises :class:`Overloaded` when the queue is full."""
        if self.running + self.waiting >= self.max_concurrency + self.max_queue:
            raise Overloaded
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()


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
