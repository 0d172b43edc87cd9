"""``/readyz`` beyond the process: whether the model servers the guard checks with (``--guard-server``, a cascade's
reasoning stage) answer. A replica that cannot reach its guard server fails every check closed (503); unready, it
leaves the load balancer's rotation, and its readiness says which server it cannot reach."""

from __future__ import annotations

import asyncio
import logging
import time

from guardsdk.backends.openai_server import OpenAIServerBackend
from guardsdk.errors import redacted_url
from guardsdk.service.batching import model_detectors

logger = logging.getLogger("guardsdk.service")

#: Seconds a probe's answer stands (Kubernetes probes every 10 s by default; a burst of probes sends one request).
PROBE_EVERY_S = 2.0
#: Seconds a model server has to list its models.
PROBE_TIMEOUT_S = 2.0


class ServerProbe:
    """Asks each model server of a guard for its model list (``GET /v1/models``: vLLM, llama.cpp's server and
    llama-cpp-python's answer it without running the model), at most every :data:`PROBE_EVERY_S` seconds."""

    def __init__(self, detector: object) -> None:
        parts = model_detectors(detector)
        self.servers = [p.backend for p in parts if isinstance(getattr(p, "backend", None), OpenAIServerBackend)]
        self.every_s = PROBE_EVERY_S
        self._at = -float("inf")
        self._problem: str | None = None
        self._probing = asyncio.Lock()  # one probe at a time: callers that come meanwhile take its answer

    async def problem(self) -> str | None:
        """None while every model server answers; else which one does not, and why (its URL without credentials).
        However many callers ask, the servers get at most one probe each per :data:`PROBE_EVERY_S` seconds, and a
        probe ends within :data:`PROBE_TIMEOUT_S` seconds."""
        if not self.servers or self._fresh():
            return self._problem
        async with self._probing:
            if self._fresh():  # probed while this caller waited
                return self._problem
            found = [p for p in await asyncio.gather(*map(_probe, self.servers)) if p]
            problem = found[0] if found else None
            if problem and problem != self._problem:
                logger.warning("not ready: %s", problem)
            elif self._problem and not problem:
                logger.info("ready again: every guard model server answers")
            self._at, self._problem = time.monotonic(), problem
        return problem

    def _fresh(self) -> bool:
        return time.monotonic() - self._at < self.every_s


async def _probe(server: OpenAIServerBackend) -> str | None:
    models = server.async_client.with_options(timeout=PROBE_TIMEOUT_S, max_retries=0).models
    try:  # the client's timeout bounds each read; a server that trickles bytes is bounded by wait_for
        await asyncio.wait_for(models.list(), PROBE_TIMEOUT_S)
    except Exception as exc:  # any failure to answer in time is "not ready", said in one line
        return f"guard model server {redacted_url(server.base_url)} does not answer ({type(exc).__name__})"
    return None


__all__ = ["PROBE_EVERY_S", "PROBE_TIMEOUT_S", "ServerProbe"]
