"""The guard service's FastAPI app: routes, auth, limits, request ids and structured logs, metrics, lifecycle."""

from __future__ import annotations

import dataclasses
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardsdk import __version__, tracing
from guardsdk.cache import VerdictCache
from guardsdk.errors import InvalidInputError, UncheckedFieldError
from guardsdk.guard import Guard
from guardsdk.policy import OnUnsafe
from guardsdk.service import check_api, proxy
from guardsdk.service.auth import authorized, check_open_service
from guardsdk.service.config import ServiceConfig
from guardsdk.service.errors import ServiceError
from guardsdk.service.limits import BodyLimit
from guardsdk.service.logs import Fields, configure_logging
from guardsdk.service.state import ServiceState

logger = logging.getLogger("guardsdk.service.requests")
#: A caller's X-Request-ID is kept only when it looks like an id (no log injection).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Route labels of the request metrics: known paths, else "other" (no unbounded label values).
_ROUTES = frozenset({"/v1/check", "/v1/check/batch", "/v1/chat/completions", "/v1/completions", "/v1/models",
                     "/healthz", "/readyz", "/metrics"})  # fmt: skip
#: Routes a prober or scraper calls every few seconds: their successful requests are logged at DEBUG.
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestLog:
    """ASGI middleware: a request id (``X-Request-ID``, kept from the caller when well-formed), one JSON log line
    per request (route, status, latency, and what the routes add: checks, blocks, reasons; the checked text only
    under ``log_content``), and the request metrics."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        fields: dict[str, object] = {}
        scope.setdefault("state", {})["log"] = fields
        status = 500
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.monotonic() - started
            route = scope["path"] if scope["path"] in _ROUTES else "other"
            self.state.metrics.requests.labels(route, str(status)).inc()
            self.state.metrics.request_latency.labels(route).observe(elapsed)
            record = {"event": "request", "request_id": request_id, "method": scope["method"], "path": route,
                      "status": status, "latency_ms": round(elapsed * 1000, 1), **fields}  # fmt: skip
            level = (logging.WARNING if fields.get("blocked") or status >= 500
                     else logging.DEBUG if route in _PROBES and status < 400 else logging.INFO)  # fmt: skip
            logger.log(level, Fields(record))


def create_app(guard: Guard, config: ServiceConfig | None = None) -> FastAPI:
    """The service around ``guard``. Adds a verdict cache to a guard without one (``config.cache_entries``, 0 for
    none) and, with ``config.upstream``, the guarded proxy. The app closes the guard when it shuts down."""
    config = config or ServiceConfig()
    check_open_service(config.host, config.api_keys)
    if config.cache_entries and guard.cache is None:
        guard.cache = VerdictCache(config.cache_entries, config.cache_ttl_s)
    state = ServiceState(guard, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        exporting = tracing.export_otlp(config.otlp_endpoint) if config.otlp_endpoint else None
        await state.start()
        if config.upstream:
            import openai

            state.upstream = openai.AsyncOpenAI(base_url=config.upstream, api_key=config.upstream_api_key,
                                                max_retries=0, timeout=config.request_timeout_s)  # fmt: skip
            served = state.guard  # the batching twin where batching is on
            gates = config.proxy_gates or served.policy.gates  # the proxy's own gates, where configured
            state.client = served.with_policy(
                dataclasses.replace(served.policy, on_unsafe=OnUnsafe.BLOCK, gates=gates)
            ).wrap(state.upstream, stream=config.stream, pass_fields=config.pass_fields)
        if config.expose_reasoning:
            logger.warning("expose_reasoning: answers about blocked checks carry the guard's output and reasoning")
        state.ready = True
        try:
            yield
        finally:  # uvicorn lets requests in flight finish before this runs
            state.ready = False
            await state.stop()
            if state.upstream is not None:
                await state.upstream.close()
            guard.close()
            if exporting is not None:
                exporting.shutdown()  # sends the spans still queued

    async def require_key(request: Request) -> None:
        if not authorized(request.headers.get("authorization"), config.api_keys):
            raise ServiceError(401, "invalid_api_key", "a valid API key is needed: Authorization: Bearer <key>",
                               headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    app = FastAPI(title="guardsdk", version=__version__, lifespan=lifespan,
                  description="Reasoning-based safety checks, and an OpenAI-compatible guarded proxy.")  # fmt: skip
    app.state.service = state
    app.include_router(check_api.router, dependencies=[Depends(require_key)])
    app.include_router(proxy.router, dependencies=[Depends(require_key)])

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown routes (404) and methods (405) answer in OpenAI's error shape, as every other error does."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"no route {request.method} {request.url.path[:200]}" if exc.status_code in (404, 405) else exc.detail
        return ServiceError(exc.status_code, code, str(message), headers=exc.headers).response()

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
        code = "unchecked_field" if isinstance(exc, UncheckedFieldError) else "invalid_input"
        return ServiceError(400, code, str(exc)).response()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "not ready: starting, shutting down, or a guard model "
                                                        "server does not answer"}})  # fmt: skip
    async def readyz() -> JSONResponse:
        """Ready: the guard's model is loaded, its model servers answer (``GET /v1/models``, at most every 2 s) and
        the service is not shutting down. No key needed: it names no content, and a server's URL without
        credentials."""
        problem = await state.servers.problem() if state.ready else "starting or shutting down"
        if problem:
            return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", dependencies=[Depends(require_key)])
    async def metrics() -> Response:
        """Prometheus metrics (text format)."""
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestLog, state=state)
    return app


def serve(guard: Guard, config: ServiceConfig | None = None) -> None:
    """Run the service with uvicorn until SIGINT / SIGTERM; in-flight requests finish first (up to the request
    deadline plus 5 s). Like ``uvicorn.run`` it sets up logging, where the application has not (the root logger has
    no handler): every line, uvicorn's included, in ``config.log_format`` (JSON lines by default) to standard error."""
    import uvicorn

    config = config or ServiceConfig()
    configure_logging(config.log_format)
    app = create_app(guard, config)
    # The model's objects (loaded before this) are never garbage: out of the collector's sight, a full collection
    # under load no longer walks them (p99 at concurrency 32: 271-301 ms against 479-488, docs/service.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_level="info", log_config=None,
                timeout_graceful_shutdown=int(config.request_timeout_s) + 5)  # fmt: skip
