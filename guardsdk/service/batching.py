"""Micro-batching: checks that arrive together become one detector call.

:class:`BatchingDetector` wraps a service guard's detector. Each ``adetect`` call (one request's checks, after the
verdict cache) waits in a queue; a dispatcher takes what arrived within ``window_s`` (at once when ``max_items``
checks wait) into one call of the wrapped detector, up to ``max_batches`` such calls at once. Under load a batch
forms while the previous ones run, so batches grow with the load and the model does one encoder pass (or one
backend call) for many requests. A request of ``max_items`` checks or more skips the queue: it runs as its own
call beside the batches, so it never holds a lane that short checks wait for.

Per request, as without batching: its deadline ends its wait (the caller's ``asyncio.wait_for`` cancels it; the
batch goes on for the others, and ends by the latest deadline among its members); a cancelled request is dropped
from the batch it waits for, or its verdicts are discarded; only requests under the same policy share a batch;
each request gets exactly its own verdicts back (by position, checked by count). A batch whose call failed as a
whole (raised, or broke the one-verdict-per-input protocol) is rerun request by request, so one input that breaks
the backend fails only its own request; what stays undecided fails closed under the service's policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from guardsdk.detectors.base import Detector, Pair, adetect_within
from guardsdk.policy import Policy
from guardsdk.verdict import Failure, Verdict

logger = logging.getLogger("guardsdk.service")

#: Defaults: a 2 ms window costs a lone request 2 ms and lets 32 concurrent ones meet in one call.
DEFAULT_WINDOW_MS = 2.0
DEFAULT_MAX_ITEMS = 32


@dataclass
class _Waiter:
    """One request's checks, waiting for their batch."""

    pairs: list[Pair]
    policy: Policy
    deadline: float
    future: asyncio.Future[list[Verdict]] = field(repr=False)


class BatchingDetector:
    """``detector`` with concurrent ``adetect`` calls coalesced into batches (see the module's docstring).

    ``detect`` (the blocking path) is not batched. Attributes it does not define (``backend``, ``family``, ...) are
    the wrapped detector's, so a guard holding it answers as before. :meth:`start` and :meth:`stop` run in the
    event loop that serves the requests; before :meth:`start`, calls go straight to the wrapped detector.
    """

    def __init__(self, detector: Detector, *, window_s: float, max_items: int, max_batches: int = 1,
                 on_batch: Callable[[int], None] | None = None, on_isolate: Callable[[], None] | None = None,
                 ) -> None:  # fmt: skip
        if max_items < 2 or window_s < 0 or max_batches < 1:
            raise ValueError("need max_items >= 2, window_s >= 0 and max_batches >= 1")
        self.inner, self.window_s, self.max_items, self.max_batches = detector, window_s, max_items, max_batches
        self.name, self.on_batch, self.on_isolate = detector.name, on_batch, on_isolate
        self._queue: deque[_Waiter] = deque()
        self._arrived: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        #: Counts since start: batches run, checks in them, requests in them, batches rerun request by request.
        self.counts = {"batches": 0, "checks": 0, "requests": 0, "isolated": 0}

    def __getattr__(self, name: str) -> object:
        if name == "inner":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the dispatcher in the running event loop."""
        self._arrived = asyncio.Event()
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="guardsdk-batching")

    async def stop(self) -> None:
        """Stop dispatching; batches in flight finish, requests still queued get undecided (backend) verdicts."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            waiter = self._queue.popleft()
            _settle(waiter, _undecided(waiter.pairs, "the service is shutting down", Failure.BACKEND, self.name))

    # -- the detector protocol -----------------------------------------------------------------
    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        return self.inner.detect(pairs, policy, deadline)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        if not pairs:
            return []
        if self._dispatcher is None or self._arrived is None or len(pairs) >= self.max_items:
            # A request that fills a batch alone gains nothing from waiting, and must not hold a lane: with one lane
            # (one in-process model) two such requests would hold up every short check behind them.
            return await self.inner.adetect(pairs, policy, deadline)
        waiter = _Waiter(list(pairs), policy, deadline, asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        self._arrived.set()
        # Cancelled (the request's deadline, or the client left): the future is cancelled with it, and the
        # dispatcher skips it, or its batch drops its verdicts.
        return await waiter.future

    def close(self) -> None:
        self.inner.close()

    # -- the dispatcher ------------------------------------------------------------------------
    def _waiting_checks(self) -> int:
        return sum(len(w.pairs) for w in self._queue if not w.future.done())

    async def _dispatch(self) -> None:
        assert self._arrived is not None
        slots = asyncio.Semaphore(self.max_batches)
        while True:
            await self._arrived.wait()
            await slots.acquire()  # a batch forms when one can run: under load, it holds what came meanwhile
            if self.window_s and self._waiting_checks() < self.max_items:
                await asyncio.sleep(self.window_s)
            batch = self._take()
            if not self._queue:
                self._arrived.clear()
            if not batch:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(lambda t: (self._running.discard(t), slots.release()))

    def _take(self) -> list[_Waiter]:
        """The next batch: the first live request, and those after it under the same policy, up to ``max_items``
        checks; the others keep their place."""
        batch: list[_Waiter] = []
        kept: deque[_Waiter] = deque()
        size = 0
        while self._queue:
            waiter = self._queue.popleft()
            if waiter.future.done():  # cancelled while waiting
                continue
            if not batch or (waiter.policy == batch[0].policy and size + len(waiter.pairs) <= self.max_items):
                batch.append(waiter)
                size += len(waiter.pairs)
            else:
                kept.append(waiter)
        self._queue = kept
        return batch

    async def _run(self, batch: list[_Waiter]) -> None:
        """:meth:`_call`; should anything in it break, the batch's requests are undecided (failing closed)."""
        try:
            await self._call(batch)
        except Exception as exc:
            logger.exception("micro-batching failed; the batch's checks are undecided")
            for waiter in batch:
                _settle(waiter, _undecided(waiter.pairs, f"batching failed: {exc!r}", Failure.BACKEND, self.name))

    async def _call(self, batch: list[_Waiter]) -> None:
        """One call for the batch's live requests, verdicts handed back by position; rerun request by request where
        the call failed as a whole."""
        batch = [w for w in batch if not w.future.done()]
        if not batch:
            return
        pairs = [pair for waiter in batch for pair in waiter.pairs]
        seconds = max(w.deadline for w in batch) - time.monotonic()
        self.counts["batches"] += 1
        self.counts["checks"] += len(pairs)
        self.counts["requests"] += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(pairs))
        verdicts = await adetect_within(self.inner, pairs, batch[0].policy, seconds)
        if len(batch) > 1 and _failed_whole(verdicts):
            self.counts["isolated"] += 1
            if self.on_isolate is not None:
                self.on_isolate()
            logger.warning("a batch of %d requests failed as a whole (%s); rerunning them one by one",
                           len(batch), verdicts[0].error)  # fmt: skip
            await asyncio.gather(*(self._alone(w) for w in batch))
            return
        start = 0
        for waiter in batch:
            _settle(waiter, verdicts[start : start + len(waiter.pairs)])
            start += len(waiter.pairs)

    async def _alone(self, waiter: _Waiter) -> None:
        if not waiter.future.done():
            verdicts = await adetect_within(self.inner, waiter.pairs, waiter.policy, waiter.deadline - time.monotonic())
            _settle(waiter, verdicts)


def model_detectors(detector: object) -> list[object]:
    """The detectors under ``detector`` that run a model themselves (a cascade's stages, an ensemble's members)."""
    stack, leaves = [detector], []
    while stack:
        part = stack.pop()
        stages = [getattr(part, name, None) for name in ("fast", "reasoning")]
        inner = [*(getattr(part, "detectors", None) or []), *(d for d in stages if d is not None)]
        stack += inner
        if not inner:
            leaves.append(part)
    return leaves


def coalesces(detector: object) -> bool:
    """Whether ``detector`` gains from one call for many checks: the classifier (one encoder pass), a transformers
    model (batched generation), a model server (concurrent requests), a detector of one's own do; a llama.cpp model in
    this process runs its inputs one after another, so a batch would only hold each answer until the last. True where
    any model the detector runs (a cascade's classifier stage, say) gains."""
    from guardsdk.backends.llamacpp import LlamaCppBackend

    return any(not isinstance(getattr(part, "backend", None), LlamaCppBackend) for part in model_detectors(detector))


def batch_lanes(detector: object, max_concurrency: int) -> int:
    """How many coalesced calls run at once: one for a single model in this process (the classifier's encoder and a
    transformers model take one call at a time, so a second batch would only wait for the first, holding checks
    that could have joined the next one: 109 vs 154 requests/s at concurrency 32, docs/service.md); else
    ``max_concurrency`` (a model server; a cascade, whose escalated checks must not hold up the next batch)."""
    from guardsdk.backends.hf import HFBackend
    from guardsdk.detectors.classifier.detector import ClassifierDetector

    single = model_detectors(detector) == [detector]
    in_process = isinstance(detector, ClassifierDetector) or isinstance(getattr(detector, "backend", None), HFBackend)
    return 1 if single and in_process else max_concurrency


def _failed_whole(verdicts: list[Verdict]) -> bool:
    """Every verdict a backend failure with one error: the call failed, not its inputs one by one."""
    return all(v.failure is Failure.BACKEND for v in verdicts) and len({v.error for v in verdicts}) == 1


def _undecided(pairs: list[Pair], error: str, failure: Failure, detector: str) -> list[Verdict]:
    return [Verdict.undecided(has_response=r is not None, error=error, failure=failure, detector=detector)
            for _, r in pairs]  # fmt: skip


def _settle(waiter: _Waiter, verdicts: list[Verdict]) -> None:
    """Hand ``waiter`` its verdicts, unless it is gone; a wrong count is never handed on (fails closed)."""
    if waiter.future.done():
        return
    if len(verdicts) != len(waiter.pairs):
        verdicts = _undecided(waiter.pairs, "batching gave a wrong number of verdicts", Failure.BACKEND, "batching")
    waiter.future.set_result(verdicts)


__all__ = ["DEFAULT_MAX_ITEMS", "DEFAULT_WINDOW_MS", "BatchingDetector", "batch_lanes", "coalesces", "model_detectors"]
