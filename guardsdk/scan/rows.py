"""The seam of both scan engines: a batch of input rows in, the same rows with their verdict columns out.

Every output row is the input row plus the ``guard_*`` columns of :func:`verdict_schema`: always the same columns
with the same types (None where a value is absent), so that Parquet parts written by any engine agree. A row the
guard cannot check (a missing column, a value of the wrong type, a line that is not JSON, text the guard refuses)
is an undecided row that says why; it never stops the scan and is never left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from guardsdk.errors import InvalidInputError, describe
from guardsdk.outcomes import quiet_check_lines
from guardsdk.scan.columns import BAD_DETAIL, BAD_ROW, PREFIX, ColumnMap, RowError
from guardsdk.verdict import TASKS, Task, Verdict

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
    columns += [("guard_decision", "str"), ("guard_reason", "str"), ("guard_undecided", "str"), ("guard_opt_in", "str")]
    if reasoning:
        columns.append(("guard_reasoning", "str"))
    columns += [("guard_reasoning_conflict", "bool"), ("guard_model", "str"), ("guard_error", "str")]
    return columns


def foreign_guard_columns(names: Sequence[str]) -> list[str]:
    """The input's own columns that start with ``guard_`` (a scan of a scan's output, say): refused up front (a row
    after the first with such a column is a bad row)."""
    return [name for name in names if isinstance(name, str) and name.startswith(PREFIX)]


def reason_kind(reason: str) -> str:
    """An undecided reason with its numbers taken out, so that the summary counts like reasons together."""
    return re.sub(r"\d+", "N", reason)[:120]


def undecided_reason(verdict: Verdict) -> str | None:
    """Why a verdict's decision is undecided; on an unsafe verdict, why a task has no label where the guard says
    (text it cannot read, say); None when decided with every task answered."""
    decision = verdict.decision
    if decision is None:
        return verdict.error or "the verdict has no decision"
    if decision.unsafe:
        return verdict.error if verdict.failure is None else None
    if decision.allowed and not decision.fail_open:
        return None
    if verdict.error:
        return verdict.error
    if not decision.undecided:
        return "no gated task applies to this check"
    return f"parse status {verdict.parse_status.value}"


def opt_in(verdict: Verdict, gates: Iterable[str] = ()) -> str | None:
    """The opt-in paths by which ``verdict``'s decision allows its row without a decided safe verdict (as
    :mod:`guardsdk.outcomes` counts them): ``fail_open``, ``elided`` (part of the input never seen), ``threshold`` (a
    threshold overrode an unsafe label of a gated task); None for none."""
    decision = verdict.decision
    if decision is None or not decision.allowed:
        return None
    paths = ["fail_open"] * bool(decision.fail_open) + ["elided"] * bool(verdict.input_truncated)
    paths += ["threshold"] * any(verdict.labels.get(task) == Task(task).positive for task in gates)
    return ", ".join(paths) or None


def _blank(row_id: int, reasoning: bool) -> dict[str, Any]:
    return dict.fromkeys((name for name, _ in verdict_schema(reasoning)), None) | {"guard_row_id": row_id}


def bad_row(row_id: int, row: dict[str, Any], reason: str, *, reasoning: bool, detail: str | None = None
            ) -> dict[str, Any]:  # fmt: skip
    """The output row of an input row that could not be checked: undecided, saying why (``detail``: what else its
    ``guard_error`` tells, e.g. a CSV row's cells past the header). The row's own ``guard_*`` keys are left out."""
    detail = detail if detail is not None else row.get(BAD_DETAIL)
    kept = {k: v for k, v in row.items() if isinstance(k, str) and not k.startswith(PREFIX)}
    out = kept | _blank(row_id, reasoning)
    out |= {"guard_decision": UNDECIDED, "guard_reason": f"undecided ({reason}); not checked",
            "guard_undecided": reason, "guard_error": f"{reason}; {detail}" if detail else reason}  # fmt: skip
    return out


def verdict_row(row_id: int, row: dict[str, Any], verdict: Verdict, *, reasoning: bool, gates: Iterable[str] = ()
                ) -> dict[str, Any]:  # fmt: skip
    """The output row of a checked input row (``gates``: the policy's, to tell a threshold override)."""
    out = dict(row) | _blank(row_id, reasoning)
    for task in TASKS:
        label = verdict.labels.get(task)
        out[f"{PREFIX}{task}"] = None if label is None else str(label)
        score = verdict.scores.get(task)
        out[f"{PREFIX}{task}_score"] = None if score is None else float(score)
    why = undecided_reason(verdict)
    decision = verdict.decision
    out["guard_decision"] = UNSAFE if decision and decision.unsafe else UNDECIDED if why is not None else SAFE
    out["guard_reason"] = decision.reason if decision else None
    out["guard_undecided"] = why
    out["guard_opt_in"] = opt_in(verdict, gates)
    if reasoning:
        out["guard_reasoning"] = json.dumps(verdict.reasoning, ensure_ascii=False) if verdict.reasoning else None
    # The audit reads reasoning: a guard that writes none (the classifier) gives no conflict flag at all.
    out["guard_reasoning_conflict"] = bool(verdict.reasoning_conflict) if verdict.reasoning else None
    out["guard_model"] = verdict.model or None
    # guard_error: the check could not run (a deadline, a backend failure); an answer the guard could not read, or
    # could not decide, is an undecided reason (guard_undecided), not an error.
    out["guard_error"] = f"{verdict.failure.value}: {verdict.error}" if verdict.failure else None
    return out


def _checked(guard: Guard, pairs: list[tuple[str, str | None]]) -> list[Verdict | str]:
    """Verdicts for ``pairs``; an item the guard refuses (``InvalidInputError``) gets its error instead, and the
    rest of its batch is still checked (as ``guardsdk eval`` does). No per-check log line: the rows say it all."""
    if not pairs:
        return []
    with quiet_check_lines():
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
    in the same order; a row that has ``guard_*`` columns of its own is a bad row."""
    out: list[dict[str, Any] | None] = [None] * len(rows)
    todo: list[int] = []
    pairs: list[tuple[str, str | None]] = []
    for index, (row_id, row) in enumerate(rows):
        foreign = foreign_guard_columns(list(row))
        if foreign:
            values = json.dumps({k: row[k] for k in foreign}, ensure_ascii=False, default=str)
            why = f"row {row_id} has scan columns of its own ({', '.join(foreign)}): rename or drop them"
            out[index] = bad_row(row_id, row, why, reasoning=reasoning, detail=f"their values: {values[:1000]}")
            continue
        if BAD_ROW in row:
            out[index] = bad_row(row_id, row, str(row[BAD_ROW]), reasoning=reasoning)
            continue
        try:
            pairs.append(columns.pair(row))
        except RowError as exc:
            out[index] = bad_row(row_id, row, str(exc), reasoning=reasoning)
            continue
        todo.append(index)
    gates = sorted(guard.policy.gates)
    for index, result in zip(todo, _checked(guard, pairs), strict=True):
        row_id, row = rows[index]
        if isinstance(result, str):
            out[index] = bad_row(row_id, row, result, reasoning=reasoning)
        else:
            out[index] = verdict_row(row_id, row, result, reasoning=reasoning, gates=gates)
    return [row for row in out if row is not None]


__all__ = [
    "SAFE",
    "UNDECIDED",
    "UNSAFE",
    "bad_row",
    "foreign_guard_columns",
    "opt_in",
    "reason_kind",
    "undecided_reason",
    "verdict_columns",
    "verdict_row",
    "verdict_schema",
]
