"""A scan's resumable output folder: ``rows.jsonl`` (appended, synced per batch) or ``rows/part-NNNNN.parquet`` files
(a folder any Parquet reader takes whole: ``pandas.read_parquet("OUT/rows")``).

Both engines write rows in row-id order, so a resumed scan needs only the number of rows written: complete JSON
lines (a torn last line is cut off), or the rows of complete Parquet parts (a part is written to a temporary name and
renamed when whole; a torn or temporary part is removed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guardsdk.eval.evaluation import completed_rows

OUTPUT_FORMATS = ("jsonl", "parquet")
JSONL_FILE = "rows.jsonl"
PARTS_DIR = "rows"
PART_GLOB = "part-*.parquet"
#: Rows a Parquet part holds (the last part of a run may hold fewer).
PART_ROWS = 4096
_ARROW_TYPES = {"int": "int64", "str": "string", "float": "float64", "bool": "bool_"}


def holds_rows(out: Path) -> bool:
    """Whether ``out`` holds scan rows of either format."""
    return (out / JSONL_FILE).exists() or any((out / PARTS_DIR).glob(PART_GLOB))


class JsonlWriter:
    """Appends rows to ``OUT/rows.jsonl``: flushed and synced after every batch."""

    def __init__(self, out: Path) -> None:
        self.path = out / JSONL_FILE
        self._handle: Any = None

    def resume(self) -> int:
        """How many complete rows are written; a torn last line (an interrupted write) is cut off."""
        return completed_rows(self.path)

    def read(self, columns: list[str]) -> Iterator[dict[str, Any]]:
        """The written rows, streamed, with only ``columns``."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for line in handle:
                row = json.loads(line)
                yield {name: row.get(name) for name in columns}

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self._handle is None:
            self._handle = self.path.open("ab")
        for row in rows:
            try:
                line = json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate in the input: written as a JSON escape, as it came
                line = json.dumps(row, default=str).encode("ascii")
            self._handle.write(line + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ParquetWriter:
    """Writes rows as ``OUT/rows/part-NNNNN.parquet`` files of :data:`PART_ROWS` rows, all with one schema: the input's
    (from a Parquet or datasets input; CSV: text columns; JSONL: the first part's, with a null, mixed or nested
    column — objects, lists — written as JSON text, so that no field is lost) and the verdict columns'."""

    def __init__(self, out: Path, verdict_types: list[tuple[str, str]], input_schema: Any = None,
                 part_rows: int | None = None) -> None:  # fmt: skip
        import pyarrow as pa

        self.out = out / PARTS_DIR
        self.part_rows = part_rows or PART_ROWS
        self.verdict = pa.schema([(name, getattr(pa, _ARROW_TYPES[kind])()) for name, kind in verdict_types])
        self.input_schema = input_schema
        self.schema: Any = None
        self.parts = 0
        self._buffer: list[dict[str, Any]] = []

    def resume(self) -> int:
        """How many rows the complete parts hold; a torn or temporary part (and any after it) is removed."""
        import pyarrow.parquet as pq

        self.out.mkdir(parents=True, exist_ok=True)
        for tmp in self.out.glob("*.parquet.tmp"):
            tmp.unlink()
        rows, torn = 0, False
        for path in sorted(self.out.glob(PART_GLOB)):
            if not torn:
                try:
                    meta = pq.read_metadata(path)
                    self.schema = self.schema or pq.read_schema(path)
                    rows += meta.num_rows
                    self.parts += 1
                    continue
                except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
                    torn = True
            path.unlink()
        return rows

    def read(self, columns: list[str]) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        for path in sorted(self.out.glob(PART_GLOB)):
            parquet = pq.ParquetFile(path)
            names = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(columns=names, batch_size=4096):
                yield from batch.to_pylist()

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._buffer.extend(rows)
        while len(self._buffer) >= self.part_rows:
            self._flush(self._buffer[: self.part_rows])
            del self._buffer[: self.part_rows]

    def close(self) -> None:
        if self._buffer:
            self._flush(self._buffer)
            self._buffer = []

    def _schema_for(self, rows: list[dict[str, Any]]) -> Any:
        import pyarrow as pa

        if self.input_schema is not None:
            return pa.schema([*self.input_schema, *self.verdict])
        # JSONL: each column's type from the first part; no value there, mixed types, or nested values (objects,
        # lists: Arrow would fix their fields from the first part and drop the others later): JSON text.
        fields = []
        for name in dict.fromkeys(k for row in rows for k in row if k not in self.verdict.names):
            try:
                kind = pa.array([row.get(name) for row in rows]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):  # (a text with a lone surrogate)
                kind = pa.string()
            flat = not (pa.types.is_null(kind) or pa.types.is_nested(kind))
            fields.append(pa.field(name, kind if flat else pa.string()))
        return pa.schema([*fields, *self.verdict])

    def _fit(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows whose values of text columns that are not text are written as JSON text (a mixed JSONL column)."""
        import pyarrow as pa

        text = [f.name for f in self.schema if pa.types.is_string(f.type) and f.name not in self.verdict.names]
        fitted = []
        for row in rows:
            odd = {k: json.dumps(row[k], ensure_ascii=False, default=str) for k in text
                   if row.get(k) is not None and not isinstance(row[k], str)}  # fmt: skip
            fitted.append(row | odd if odd else row)
        return fitted

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.schema is None:
            self.schema = self._schema_for(rows)
        known = set(self.schema.names)
        extra = sorted({k for row in rows for k in row} - known)
        if extra:
            raise ValueError(f"rows hold columns the first Parquet part has not ({', '.join(extra)}); "
                             "scan to JSONL (--format jsonl) for rows whose columns differ")  # fmt: skip
        try:
            try:
                table = pa.Table.from_pylist(self._fit(rows), schema=self.schema)
            except UnicodeEncodeError:  # a lone surrogate (a JSONL "\ud800"): Parquet holds UTF-8 only, so U+FFFD
                table = pa.Table.from_pylist([{k: _utf8(v) for k, v in row.items()} for row in self._fit(rows)],
                                             schema=self.schema)  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"rows do not fit the first Parquet part's column types ({exc}); "
                             "scan to JSONL (--format jsonl) for rows whose types differ") from None  # fmt: skip
        path = self.out / f"part-{self.parts:05d}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.parts += 1


def _utf8(value: Any) -> Any:
    """``value`` with each lone surrogate of a text as U+FFFD (a text that UTF-8 can hold as it is)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def open_writer(out: Path, output_format: str, verdict_types: list[tuple[str, str]], input_schema: Any = None
                ) -> JsonlWriter | ParquetWriter:  # fmt: skip
    """The writer of ``output_format`` into ``out``; the folder must not hold rows of the other format."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, not {output_format!r}")
    other = f"{PARTS_DIR}/{PART_GLOB}" if output_format == "jsonl" else JSONL_FILE
    if any(out.glob(other)):
        raise ValueError(f"{out} holds rows in another format ({other}); use another --out")
    if output_format == "jsonl":
        return JsonlWriter(out)
    return ParquetWriter(out, verdict_types, input_schema)


__all__ = [
    "JSONL_FILE",
    "OUTPUT_FORMATS",
    "PARTS_DIR",
    "PART_ROWS",
    "JsonlWriter",
    "ParquetWriter",
    "holds_rows",
    "open_writer",
]
