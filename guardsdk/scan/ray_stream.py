"""The stream of :mod:`guardsdk.scan.ray_engine`: the driver's feed of batches into a Ray queue, the one read task that
takes them off it, and the driver's reading of the results in order (a batch lost to a dead actor as undecided rows,
a stream cut short as an error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import threading
from collections.abc import Iterable, Iterator
from typing import Any

Row = tuple[int, dict[str, Any]]


def _span(rows: list[Row]) -> str:
    return f"{rows[0][0]}-{rows[-1][0]}" if rows else "(none)"


class _Feed:
    """The driver's side of the stream: a thread puts the pickled batches into a bounded Ray queue (an actor), so
    reading the input waits for the checks and memory stays flat; ``None`` ends the stream, and stays in the queue
    (a read task started again finds it, never an empty queue to wait on forever). ``pending``: the batches not
    back yet, by number (a batch whose worker died becomes undecided rows)."""

    def __init__(self, groups: Iterator[list[Row]], maxsize: int) -> None:
        from ray.util.queue import Queue

        self.queue = Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.pending: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(groups,), name="guardsdk-ray-feed", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        from ray.util.queue import Full

        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return True
            except Full:
                continue
        return False

    def _run(self, groups: Iterator[list[Row]]) -> None:
        try:
            for seq, group in enumerate(groups):
                self.pending[seq] = blob = pickle.dumps(group, protocol=5)
                if not self._put((seq, blob)):
                    return
        except BaseException as exc:  # raised again in the driver's thread, once the checks queued so far are done
            self.error = exc
        with contextlib.suppress(Exception):  # (the queue's actor gone with Ray: nothing left to feed)
            while self._put(None):  # keep the end in the queue until the scan is over
                self._stop.wait(0.5)
                while not self._stop.is_set() and not self.queue.empty():
                    self._stop.wait(0.5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _QueueSource:
    """A Ray Data datasource of one read task that takes the batches off the queue as they come (``num_cpus=0``: it
    mostly waits), one block per batch."""

    def __new__(cls, queue: Any) -> Any:
        from ray.data.block import BlockMetadata
        from ray.data.datasource import Datasource, ReadTask

        class QueueSource(Datasource):
            def estimate_inmemory_data_size(self) -> None:
                return None

            def get_read_tasks(self, parallelism: int, per_task_row_limit: Any = None, data_context: Any = None
                               ) -> list[ReadTask]:  # fmt: skip
                def read() -> Iterator[Any]:
                    import pyarrow as pa

                    def block(seq: int, group: bytes) -> Any:
                        return pa.table({"seq": pa.array([seq], pa.int64()), "group": pa.array([group], pa.binary())})

                    count = 0
                    while (item := queue.get()) is not None:
                        if item[0] != count:  # a read task started again (its worker died) on a drained queue
                            raise RuntimeError(f"the Ray read task got batch {item[0]} where {count} was due")
                        yield block(*item)
                        count += 1
                    yield block(count, b"")  # the end: how many batches went to the actors

                fields = {"num_rows": None, "size_bytes": None, "exec_stats": None, "input_files": None}
                if "schema" in {field.name for field in dataclasses.fields(BlockMetadata)}:  # Ray before 2.4x
                    fields["schema"] = None
                metadata = BlockMetadata(**fields)
                return [ReadTask(read, metadata)]

        return QueueSource()


def _results(items: Iterable[dict[str, Any]], feed: _Feed, reasoning: bool) -> Iterator[list[dict[str, Any]]]:
    """The batches in order; a batch missing before the one that came (its actor died) as undecided rows; an error
    when the stream ends without its end (the read task died: no batch after the last one back is written)."""
    from guardsdk.scan.rows import bad_row

    expected = 0
    for item in items:
        seq, blob = int(item["seq"]), item["group"]
        if seq < expected:  # preserve_order makes this impossible; never write out of order
            raise RuntimeError(f"ray engine: batch {seq} came back after batch {expected - 1}")
        for lost in range(expected, seq):  # checked by an actor that died: undecided rows
            rows = pickle.loads(feed.pending.pop(lost))
            why = f"the worker checking rows {_span(rows)} died (its process ended: a crash or out of memory)"
            yield [bad_row(row_id, row, why, reasoning=reasoning) for row_id, row in rows]
        if not blob:  # the end: every batch fed came back
            return
        result = pickle.loads(blob)
        if isinstance(result, Exception):
            raise result
        feed.pending.pop(seq, None)
        yield result
        expected = seq + 1
    first = min(feed.pending, default=None)
    where = f"rows from {pickle.loads(feed.pending[first])[0][0]} on" if first is not None else "the last rows"
    raise RuntimeError(f"ray engine: the Ray read task ended before the input did (its worker died?): {where} "
                       "are not checked; run the scan again to resume")  # fmt: skip


__all__ = ["Row"]
