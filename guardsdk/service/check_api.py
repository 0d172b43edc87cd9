"""The check API: ``POST /v1/check`` and ``POST /v1/check/batch`` answer with verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from guardsdk.service.schemas import BatchOut, BatchRequest, CheckItem, CheckRequest, VerdictOut
from guardsdk.service.state import ServiceState, failure_error, shown
from guardsdk.verdict import Verdict

router = APIRouter()

_ANSWERS = {
    400: {"description": "the input cannot be checked (e.g. an image part, a NUL character)"},
    401: {"description": "no valid API key"},
    413: {"description": "the body is over the size limit"},
    429: {"description": "overloaded: every slot busy and the queue full (see Retry-After)"},
    503: {"description": "the guard backend failed: the verdict (in the body) fails closed"},
    504: {"description": "the request deadline passed: the verdict (in the body) is undecided and fails closed"},
}


async def _check(request: Request, items: Sequence[CheckItem], gates: Sequence[str] | None) -> list[Verdict]:
    state: ServiceState = request.app.state.service
    # uncheckable input, or a message field the guard does not read: InvalidInputError, answered 400 by the app
    pairs = [item.pair(state.config.pass_fields) for item in items]
    guard = state.checking_guard(gates)
    verdicts = await state.admitted(lambda: guard.acheck_batch(pairs), lambda: state.deadline_verdicts(pairs, guard),
                                    checks=len(pairs))  # fmt: skip
    blocked = [v for v in verdicts if not v.allowed]
    request.state.log.update(checks=len(verdicts), blocked=len(blocked),
                             reasons=sorted({v.decision.reason for v in blocked if v.decision}))  # fmt: skip
    if blocked and state.config.log_content:
        request.state.log["content"] = [list(p) for p, v in zip(pairs, verdicts, strict=True) if not v.allowed]
    return verdicts


def _answer(verdicts: list[Verdict], body: object) -> JSONResponse:
    """200 with the body, or the status of the first failure (503, 504) with the same body."""
    failed = next((error for error in map(failure_error, verdicts) if error is not None), None)
    return JSONResponse(body, status_code=200 if failed is None else failed.status)


@router.post("/v1/check", response_model=VerdictOut, responses=_ANSWERS)
async def check(body: CheckRequest, request: Request) -> JSONResponse:
    """Check one input; the verdict's ``allowed`` is the service policy's decision."""
    [verdict] = await _check(request, [body], body.gates)
    config = request.app.state.service.config
    return _answer([verdict], VerdictOut(**shown(verdict, config)).model_dump())


@router.post("/v1/check/batch", response_model=BatchOut, responses=_ANSWERS)
async def check_batch(body: BatchRequest, request: Request) -> JSONResponse:
    """Check up to 256 inputs in one backend call; verdicts come back in order."""
    verdicts = await _check(request, body.items, body.gates)
    config = request.app.state.service.config
    return _answer(verdicts, BatchOut(verdicts=[VerdictOut(**shown(v, config)) for v in verdicts]).model_dump())
