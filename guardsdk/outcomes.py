"""What a decided verdict sets off: ``guard.stats``, the WARNING lines, the callbacks, the tracer and the observers.

Every path that ends *allowed* without a decided safe verdict (fail-open, elided input, a threshold over an unsafe
label) is logged at WARNING and counted here, as is every block (its reason and model, never its content).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from guardsdk.policy import OnUnsafe, Policy
from guardsdk.tracing import record_check
from guardsdk.verdict import Failure, Task, Verdict

logger = logging.getLogger("guardsdk")
Callback = Callable[[Verdict], None]
_quiet = contextvars.ContextVar("guardsdk_quiet_check_lines", default=False)


@contextlib.contextmanager
def quiet_check_lines() -> Iterator[None]:
    """Within this block, in this thread or task only, checks write no per-check WARNING line (flagged, blocked,
    allowed by an opt-in path, audit flag); their counts, callbacks and spans stay. For a caller that records every
    verdict itself (``guardsdk scan`` writes each row's decision and opt-in path): other guards and threads in the
    process keep their lines."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


class Outcomes:
    """The counters of one guard (shared by its :meth:`~guardsdk.Guard.with_policy` twins), thread-safe."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        """Add one to ``stats[name]``."""
        with self._lock:
            self.stats[name] += 1

    def record(
        self, verdict: Verdict, policy: Policy, mode: str, observers: Iterable[Callback],
        callbacks: Mapping[str, Callback | None],
    ) -> None:  # fmt: skip
        """Count a decided verdict, log what it allows without a decided safe verdict (or that it blocks), report
        it to ``callbacks`` (by the event each names: escalations, over_refusals, reasoning_conflicts), the tracer
        and ``observers``. A callback or observer that raises is logged and counted; the verdict stands."""
        decision = verdict.decision
        assert decision is not None, "record a decided verdict"
        unseen = verdict.input_truncated and decision.allowed
        overridden = decision.allowed and any(verdict.labels.get(t) == Task(t).positive for t in policy.gates)
        outcome = ("unsafe" if decision.unsafe else "failed_open" if decision.fail_open
                   else None if decision.allowed else "failed_closed")  # fmt: skip
        flags = {"long_inputs": verdict.long_input, "windowed": verdict.windows > 1, "escalated": verdict.escalated,
                 "cache_hits": verdict.cached, "deadlines": verdict.failure is Failure.DEADLINE,
                 "backend_errors": verdict.failure is Failure.BACKEND, "elided": verdict.input_truncated,
                 "allowed_unseen": unseen, "allowed_by_threshold": overridden,
                 "unreadable": (verdict.error or "").startswith("unreadable:")}  # fmt: skip
        with self._lock:
            self.stats["checks"] += 1
            self.stats["allowed" if decision.allowed else "blocked"] += 1
            for name in [outcome, *(name for name, flag in flags.items() if flag)]:
                if name:
                    self.stats[name] += 1
        if not _quiet.get():
            _log_lines(verdict, policy, unseen, overridden)
        happened = {"escalations": verdict.complied_with_harmful_request, "over_refusals": verdict.over_refusal,
                    "reasoning_conflicts": bool(verdict.reasoning_conflict)}  # fmt: skip
        for name, callback in callbacks.items():
            if happened.get(name):
                self.count(name)
                self._call(callback, verdict, f"{name} callback")
        record_check(verdict, mode)
        for observer in observers:
            self._call(observer, verdict, "observer")

    def _call(self, callback: Callback | None, verdict: Verdict, what: str) -> None:
        if callback is None:
            return
        try:
            callback(verdict)
        except Exception:  # a broken callback never loses a verdict
            logger.exception("guardsdk %s raised", what)
            self.count("callback_errors")


def _log_lines(verdict: Verdict, policy: Policy, unseen: bool, overridden: bool) -> None:
    """The WARNING lines of one decided check: what it allowed without a decided safe verdict, or that it blocked
    (flagged, under ``annotate``), and an audit flag; never its content."""
    decision = verdict.decision
    assert decision is not None
    if decision.fail_open or unseen or overridden:
        why = (decision.reason if decision.fail_open else "part of the input was elided unseen (long_input='elide')"
               if unseen else "a policy threshold overrode the model's unsafe label")  # fmt: skip
        logger.warning("guard allowed a check without a decided safe verdict: %s", why)
    elif not decision.allowed:  # under on_unsafe="annotate" the caller decides: the guard flags, not blocks
        verb = "flagged" if policy.on_unsafe is OnUnsafe.ANNOTATE else "blocked"
        logger.warning("guard %s a check: %s (model %s)", verb, decision.reason, verdict.model)
    if verdict.reasoning_conflict:
        logger.warning("guard reasoning argues against its own label on %s (audit flag; the label stands)",
                       ", ".join(verdict.reasoning_conflict))  # fmt: skip


__all__ = ["Outcomes", "quiet_check_lines"]
