"""Reading a scan's input row by row, streamed: JSONL, CSV, Parquet, or a Hugging Face ``save_to_disk`` folder (and
a ``.json`` file holding a JSON array of row objects: loaded whole).

A source yields ``(row_id, row)`` from a start row without ever holding the whole input; row ids count the input's
rows from 0 (blank JSONL lines are not rows). A JSONL line that is not a JSON object is a row all the same: its
dict holds :data:`~guardsdk.scan.columns.BAD_ROW` (why), and the scan writes it as an undecided row.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardsdk.scan.columns import BAD_DETAIL, BAD_ROW
from guardsdk.scan.sampling import pick, reservoir, take

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
             ".pq": "parquet"}  # fmt: skip
Row = tuple[int, dict[str, Any]]


def _raise_csv_field_limit() -> None:
    """Let a CSV cell be as long as the platform allows (the csv module's default is 131,072 characters): a long
    cell is read, and the long-input policy decides what to do with it."""
    limit = sys.maxsize
    while limit > 131_072:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _open_csv(path: Path) -> Any:
    # utf-8-sig: a byte-order mark is not part of the first column's name; surrogateescape: a byte that is not
    # UTF-8 does not stop the scan (its row becomes a bad row, see _csv_rows).
    return path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _readable(text: str) -> str:
    """``text`` read with surrogateescape, its undecodable bytes as U+FFFD (so that JSONL and Parquet can hold it)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if _has_surrogates(text) else text


def detect_format(path: Path) -> str:
    """The format of ``path``: by its suffix, or ``datasets`` for a ``save_to_disk`` folder."""
    if path.is_dir():
        if (path / "dataset_dict.json").exists():
            raise ValueError(f"{path} is a DatasetDict folder: scan one split's folder (e.g. {path / 'train'})")
        if (path / "state.json").exists() or (path / "dataset_info.json").exists():
            return "datasets"
        raise ValueError(f"{path} is a folder but not a Hugging Face save_to_disk folder (no state.json)")
    if not path.exists():
        raise ValueError(f"no such input: {path}")
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt == "jsonl" and path.suffix.lower() == ".json":  # a JSON array of rows, or JSONL named .json
        with path.open("rb") as handle:
            fmt = "json" if handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[") else "jsonl"
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name}; give input_format ({', '.join(FORMATS)})")
    return fmt


@dataclass(frozen=True)
class Source:
    """One input file (or ``save_to_disk`` folder) and its format."""

    path: Path
    format: str

    def files(self) -> list[Path]:
        """The files that hold the rows: the path itself, or a datasets folder's Arrow files in order."""
        if self.format != "datasets":
            return [self.path]
        state = self.path / "state.json"
        if state.exists():
            try:
                names = [str(f["filename"]) for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
            except (KeyError, TypeError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
                raise ValueError(f"{state} is not a datasets state.json (no _data_files filenames: "
                                 f"{type(exc).__name__}: {exc})") from None  # fmt: skip
            return [self.path / name for name in names]
        return sorted(self.path.glob("*.arrow"))

    def fingerprint(self) -> dict[str, Any]:
        """What says the input is the same one: its path, format, and each file's size and modification time."""
        stats = [[p.name, (s := p.stat()).st_size, s.st_mtime_ns] for p in self.files()]
        return {"path": str(self.path.resolve()), "format": self.format, "files": stats}

    def columns(self) -> list[str] | None:
        """The column names where the format declares them (CSV header, Parquet / Arrow schema); else None."""
        schema = self.schema()
        if schema is not None:
            return list(schema.names)
        if self.format == "csv":
            _raise_csv_field_limit()
            with _open_csv(self.path) as handle:
                return [_readable(name) for name in next(csv.reader(handle), [])]
        return None

    def schema(self) -> Any:
        """The Arrow schema of a Parquet or datasets input (None for JSONL and CSV)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(self.path)
        if self.format == "datasets":
            files = self.files()
            return _open_arrow(files[0]).schema if files else None
        return None

    def count(self) -> int | None:
        """How many rows, where that is cheap: Parquet metadata, Arrow batch lengths, JSONL newlines."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(self.path).metadata.num_rows)
        if self.format == "datasets":
            return sum(batch.num_rows for f in self.files() for batch in _open_arrow(f))
        if self.format == "jsonl":
            return sum(1 for _ in self._lines())
        if self.format == "json":
            return len(self._json_array())
        return None

    def row_ids(self) -> Iterator[int]:
        """Every row id, cheaply (no row is parsed where the format allows)."""
        total = self.count()
        if total is not None:
            return iter(range(total))
        return (row_id for row_id, _ in self.rows())

    def rows(self, start: int = 0) -> Iterator[Row]:
        """``(row_id, row)`` from row ``start`` on, streamed."""
        if self.format == "jsonl":
            return self._jsonl_rows(start)
        if self.format == "json":
            return self._json_rows(start)
        if self.format == "csv":
            return self._csv_rows(start)
        return self._arrow_rows(start)

    def _lines(self) -> Iterator[bytes]:
        # Lines end at "\n" only (binary mode): texts may hold U+2028, where str.splitlines would cut them.
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield line

    def _jsonl_rows(self, start: int) -> Iterator[Row]:
        for row_id, line in enumerate(self._lines()):
            if row_id < start:
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
                yield row_id, {BAD_ROW: f"row {row_id} is not JSON ({type(exc).__name__}: {exc})"}
                continue
            if not isinstance(row, dict):
                yield row_id, {BAD_ROW: f"row {row_id} is a JSON {type(row).__name__}, not an object"}
                continue
            yield row_id, row

    def _json_array(self) -> list[Any]:
        """A ``.json`` file's array of rows, loaded whole (the only input that is not streamed)."""
        try:
            with self.path.open("rb") as handle:
                items = json.load(handle)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{self.path.name} is not a JSON array ({type(exc).__name__}: {exc}); for one JSON "
                             "object a line, give --input-format jsonl") from None  # fmt: skip
        if not isinstance(items, list):
            raise ValueError(f"{self.path.name} holds a JSON {type(items).__name__}, not an array of row objects")
        return items

    def _json_rows(self, start: int) -> Iterator[Row]:
        items = self._json_array()
        for row_id in range(start, len(items)):
            row = items[row_id]
            if isinstance(row, dict):
                yield row_id, row
            else:
                yield row_id, {BAD_ROW: f"row {row_id} is a JSON {type(row).__name__}, not an object"}

    def _csv_rows(self, start: int) -> Iterator[Row]:
        # CSV has no null: an empty cell reads as null (a missing text), not as an empty string. Blank lines are not
        # rows. A row whose cells do not match the header, or that is not UTF-8, is a bad row that says so.
        _raise_csv_field_limit()
        with _open_csv(self.path) as handle:
            reader = csv.reader(handle)
            header = [_readable(name) for name in next(reader, [])]
            for row_id, cells in enumerate(cells for cells in _csv_records(reader) if cells):
                if row_id >= start:
                    yield (
                        row_id,
                        _csv_row(row_id, header, cells)
                        if isinstance(cells, list)
                        else {BAD_ROW: f"row {row_id} {cells}"},
                    )

    def _arrow_rows(self, start: int) -> Iterator[Row]:
        row_id = 0
        for batch in self._batches():
            size = batch.num_rows
            if row_id + size > start:
                skip = max(0, start - row_id)
                for offset, row in enumerate(batch.slice(skip).to_pylist()):
                    yield row_id + skip + offset, row
            row_id += size

    def _batches(self) -> Iterator[Any]:
        if self.format == "parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(self.path).iter_batches(batch_size=1024)
        else:
            for path in self.files():
                for batch in _open_arrow(path):
                    yield from (batch.slice(i, 1024) for i in range(0, batch.num_rows, 1024))


def _csv_records(reader: Any) -> Iterator[list[str] | str]:
    """The reader's records; a record the csv module cannot read as the reason why (the reader goes on after it)."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield f"is not CSV (line {reader.line_num}: {exc})"


def _csv_row(row_id: int, header: list[str], cells: list[str]) -> dict[str, Any]:
    values = [_readable(cell) for cell in cells]
    row: dict[str, Any] = {name: (v if v != "" else None) for name, v in zip(header, values, strict=False)}
    if len(cells) != len(header):
        row |= dict.fromkeys(header[len(cells) :])
        row[BAD_ROW] = f"row {row_id} has {len(cells)} cells, the header {len(header)}"
        if len(cells) > len(header):
            row[BAD_DETAIL] = "cells past the header: " + json.dumps(values[len(header) :], ensure_ascii=False)
    elif any(map(_has_surrogates, cells)):
        bad = next(name for name, cell in zip(header, cells, strict=True) if _has_surrogates(cell))
        row[BAD_ROW] = f"row {row_id} is not UTF-8 text (column {bad!r}; bytes shown as U+FFFD)"
    return row


def _open_arrow(path: Path) -> Any:
    """A ``save_to_disk`` Arrow file (IPC stream format, memory-mapped): an iterable of record batches."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid:  # the Arrow file format, not the stream format datasets writes
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        return [reader.get_batch(i) for i in range(reader.num_record_batches)]


def open_source(path: str | os.PathLike[str], input_format: str | None = None) -> Source:
    """The :class:`Source` of ``path`` (its format from the suffix unless ``input_format`` names it)."""
    location = Path(path)
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"input_format must be one of {FORMATS}, not {input_format!r}")
    fmt = input_format or detect_format(location)
    if not location.exists():
        raise ValueError(f"no such input: {location}")
    return Source(location, fmt)


__all__ = ["FORMATS", "Source", "detect_format", "open_source", "pick", "reservoir", "take"]
