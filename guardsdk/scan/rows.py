"""The seam of both scan engines: a batch of input rows in, the same rows with their verdict columns out.

Every output row is the input row plus the ``guard_*`` columns of :func:`verdict_schema`: always the same columns
with the same types (None where a value is absent), so that Parquet parts written by any engine agree. A row the
guard cannot check (a missing column, a value of the wrong type, a line that is not JSON, text the guard refuses)
is an undecided row that says why; it never stops the scan and is never left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardsdk.errors import InvalidInputError, describe
from guardsdk.scan.columns import BAD_ROW, PREFIX, ColumnMap, RowError
from guardsdk.verdict import TASKS, Verdict

if TYPE_CHECKING:
    from guardsdk.guard import Guard

SAFE, UNSAFE, UNDECIDED = "safe", "unsafe", "undecided"
Row = tuple[int, dict[str, Any]]


def verdict_schema(reasoning: bool) -> list[tuple[str, str]]:
    """The verdict columns in order, each with its type: ``int``, ``str``, ``float`` or ``bool`` (all nullable
    but ``guard_row_id`` and ``guard_decision``)."""
    columns = [("guard_row_id", "int")]
    columns += [(f"{PREFIX}{task}", "str") for task in TASKS]
    columns += [(f"{PREFIX}{task}_score", "float") for task in TASKS]
    columns += [("guard_decision", "str"), ("guard_reason", "str"), ("guard_undecided", "str")]
    if reasoning:
        columns.append(("guard_reasoning", "str"))
    columns += [("guard_reasoning_conflict", "bool"), ("guard_model", "str"), ("guard_error", "str")]
    return columns


def foreign_guard_columns(names: Sequence[str]) -> list[str]:
    """The input's own columns that start with ``guard_`` (a scan of a scan's output, say): refused up front."""
    return [name for name in names if name.startswith(PREFIX) and name != BAD_ROW]


def reason_kind(reason: str) -> str:
    """An undecided reason with its numbers taken out, so that the summary counts like reasons together."""
    return re.sub(r"\d+", "N", reason)[:120]


def undecided_reason(verdict: Verdict) -> str | None:
    """Why a verdict's decision is undecided (None when it is decided safe or unsafe)."""
    decision = verdict.decision
    if decision is None or decision.unsafe or (decision.allowed and not decision.fail_open):
        return None
    if verdict.error:
        return verdict.error
    if not decision.undecided:
        return "no gated task applies to this check"
    return f"parse status {verdict.parse_status.value}"


def _blank(row_id: int, reasoning: bool) -> dict[str, Any]:
    return dict.fromkeys((name for name, _ in verdict_schema(reasoning)), None) | {"guard_row_id": row_id}


def bad_row(row_id: int, row: dict[str, Any], reason: str, *, reasoning: bool) -> dict[str, Any]:
    """The output row of an input row that could not be checked: undecided, saying why."""
    out = {k: v for k, v in row.items() if k != BAD_ROW} | _blank(row_id, reasoning)
    out |= {"guard_decision": UNDECIDED, "guard_reason": f"undecided ({reason}); not checked",
            "guard_undecided": reason, "guard_error": reason}  # fmt: skip
    return out


def verdict_row(row_id: int, row: dict[str, Any], verdict: Verdict, *, reasoning: bool) -> dict[str, Any]:
    """The output row of a checked input row."""
    out = dict(row) | _blank(row_id, reasoning)
    for task in TASKS:
        label = verdict.labels.get(task)
        out[f"{PREFIX}{task}"] = None if label is None else str(label)
        score = verdict.scores.get(task)
        out[f"{PREFIX}{task}_score"] = None if score is None else float(score)
    why = undecided_reason(verdict)
    decision = verdict.decision
    out["guard_decision"] = UNDECIDED if why is not None else UNSAFE if decision and decision.unsafe else SAFE
    out["guard_reason"] = decision.reason if decision else None
    out["guard_undecided"] = why
    if reasoning:
        out["guard_reasoning"] = json.dumps(verdict.reasoning, ensure_ascii=False) if verdict.reasoning else None
    # The audit reads reasoning: a guard that writes none (the classifier) gives no conflict flag at all.
    out["guard_reasoning_conflict"] = bool(verdict.reasoning_conflict) if verdict.reasoning else None
    out["guard_model"] = verdict.model or None
    out["guard_error"] = verdict.error
    return out


def _checked(guard: Guard, pairs: list[tuple[str, str | None]]) -> list[Verdict | str]:
    """Verdicts for ``pairs``; an item the guard refuses (``InvalidInputError``) gets its error instead, and the
    rest of its batch is still checked (as ``guardsdk eval`` does)."""
    if not pairs:
        return []
    try:
        return list(guard.check_batch(pairs))
    except InvalidInputError:
        results: list[Verdict | str] = []
        for pair in pairs:
            try:
                results.append(guard.check_batch([pair])[0])
            except InvalidInputError as exc:
                results.append(describe(exc))
        return results


def verdict_columns(guard: Guard, rows: list[Row], columns: ColumnMap, *, reasoning: bool) -> list[dict[str, Any]]:
    """Check ``rows`` (``(row_id, row)`` pairs) with ``guard`` in one batch; the rows with their verdict columns,
    in the same order. Raises ``ValueError`` for an input that already has ``guard_*`` columns."""
    out: list[dict[str, Any] | None] = [None] * len(rows)
    todo: list[int] = []
    pairs: list[tuple[str, str | None]] = []
    for index, (row_id, row) in enumerate(rows):
        foreign = foreign_guard_columns(list(row))
        if foreign:
            raise ValueError(f"the input already has scan columns ({', '.join(foreign)}): rename or drop them")
        if BAD_ROW in row:
            out[index] = bad_row(row_id, row, str(row[BAD_ROW]), reasoning=reasoning)
            continue
        try:
            pairs.append(columns.pair(row))
        except RowError as exc:
            out[index] = bad_row(row_id, row, str(exc), reasoning=reasoning)
            continue
        todo.append(index)
    for index, result in zip(todo, _checked(guard, pairs), strict=True):
        row_id, row = rows[index]
        if isinstance(result, str):
            out[index] = bad_row(row_id, row, result, reasoning=reasoning)
        else:
            out[index] = verdict_row(row_id, row, result, reasoning=reasoning)
    return [row for row in out if row is not None]


__all__ = [
    "SAFE",
    "UNDECIDED",
    "UNSAFE",
    "bad_row",
    "foreign_guard_columns",
    "reason_kind",
    "undecided_reason",
    "verdict_columns",
    "verdict_row",
    "verdict_schema",
]
