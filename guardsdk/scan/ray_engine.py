"""``guardsdk scan --engine ray``: the same scan on Ray Data, past one machine (docs/scan.md, "Past one machine").

The driver (the process running ``guardsdk scan``) reads the input and writes the output as the local engine does;
only the checks move. A reader thread pickles each batch of ``(row_id, row)`` pairs into a bounded Ray queue (so
nested values — message lists, dicts, mixed types — never meet Arrow's schema inference and come back exactly as they
went, and memory stays flat: at most ``chunk_rows`` rows wait). One Ray Data read task (no CPU of its own) takes the
batches off the queue as they come, one block a batch, and ``map_batches`` runs :class:`GuardActor` on one actor pool
of ``concurrency`` actors for the whole scan: each actor builds its guard once from the picklable ``factory`` and calls
:func:`guardsdk.scan.rows.verdict_columns` on one batch at a time — the very call the local engine makes on the same
batch, so the output is the same row for row. The driver takes the batches back in order (``preserve_order``) and
yields them as they come. A batch is never retried: one whose actor died comes back as undecided rows and the scan
goes on; a stream cut short (the read task died) is an error (:mod:`guardsdk.scan.ray_stream`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from guardsdk.scan.ray_stream import Row, _Feed, _QueueSource, _results, _span

if TYPE_CHECKING:
    from guardsdk.guard import Guard
    from guardsdk.scan.columns import ColumnMap

logger = logging.getLogger("guardsdk.scan")

INSTALL_HINT = "the ray engine needs Ray: pip install 'guardsdk[scan]'"

#: Rows read ahead of the actors, at most (the reader waits while the queue is full).
DEFAULT_CHUNK_ROWS = 10_000


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line :class:`RuntimeError` saying how to install it."""
    try:
        import ray
        import ray.data  # Ray Data is the ray[data] extra
    except ImportError as exc:
        raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None
    return ray


def _limit_threads(threads: int) -> None:
    """Keep one actor's libraries to its CPUs, so N actors on N cores do not each start a thread per core: torch's
    intra-op threads (the classifier) and llama.cpp's default (half the machine's cores, unless the factory set it)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        from guardsdk.backends import llamacpp

        llamacpp.default_threads = lambda: threads  # read at load time; an explicit n_threads still wins
    except ImportError:  # pragma: no cover - guardsdk's own module
        pass


class GuardActor:
    """One Ray actor of the pool: builds its guard once, then checks one runner batch per call."""

    def __init__(
        self, factory: Callable[[], Guard], columns: ColumnMap, reasoning: bool, threads: int | None = None
    ) -> None:
        if threads:
            _limit_threads(threads)
        self.guard = factory()
        self.columns = columns
        self.reasoning = reasoning

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = [self._check(group) if group else group for group in batch["group"]]  # b"": the end of the stream
        return {"seq": np.asarray(batch["seq"]), "group": np.array(out, dtype=object)}

    def _check(self, group: bytes) -> bytes:
        from guardsdk.scan.memory import release_free_memory
        from guardsdk.scan.rows import verdict_columns

        rows = pickle.loads(group)
        try:
            return pickle.dumps(verdict_columns(self.guard, rows, self.columns, reasoning=self.reasoning))
        except Exception as exc:  # raised in the driver: a lost block means a worker that died, nothing else
            return pickle.dumps(RuntimeError(f"checking rows {_span(rows)} failed: {type(exc).__name__}: {exc}"))
        finally:
            release_free_memory()

    def __del__(self) -> None:
        guard = getattr(self, "guard", None)
        if guard is not None:
            with contextlib.suppress(Exception):  # an actor going away must not fail on its guard's close
                guard.close()


def _regroup(batches: Iterable[list[Row]], batch_size: int | None) -> Iterator[list[Row]]:
    """The runner's batches, or with ``batch_size`` the same rows in groups of that many."""
    if not batch_size:
        yield from (list(batch) for batch in batches if batch)
        return
    group: list[Row] = []
    for batch in batches:
        for row in batch:
            group.append(row)
            if len(group) >= batch_size:
                yield group
                group = []
    if group:
        yield group


@contextlib.contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """Ray Data settings of this scan, put back afterwards: batches come back in order, one block each (Ray Data
    would otherwise merge the reader's small blocks into one and give the whole stream to one actor), quiet."""
    context = ray.data.DataContext.get_current()
    # max_errored_blocks: a block lost to a dead actor does not stop the scan (its rows become undecided rows).
    settings = {"target_max_block_size": 1, "print_on_execution_start": False, "max_errored_blocks": -1}
    saved = {name: getattr(context, name) for name in settings if hasattr(context, name)}
    order = context.execution_options.preserve_order
    loggers = {name: logging.getLogger(name).level for name in ("ray.data", "ray")}  # the scan reports lost blocks
    for name, value in settings.items():
        if name in saved:
            setattr(context, name, value)
    context.execution_options.preserve_order = True
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "ray.data" else logging.WARNING)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = order
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


def start_ray(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None) -> bool:
    """Connect to Ray: the running instance if this process has one, the cluster at ``address`` (``"auto"``: the one
    ``ray start`` left on this node; also ``$RAY_ADDRESS``), else a local instance of ``num_cpus`` (all the cores).
    True when this call started or joined it (so the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return True


def default_concurrency(num_cpus_per_actor: float) -> int:
    """One actor per ``num_cpus_per_actor`` of the cluster's CPUs (at least one)."""
    ray = import_ray()
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // num_cpus_per_actor)) if num_cpus_per_actor > 0 else max(1, int(cpus))


def _quiet_warnings() -> None:
    # One read task feeds the pool as the input streams in; Ray Data, counting one input block, warns it cannot use
    # the actors (it does: one block per batch).
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    # max_restarts / max_task_retries have no named parameter of map_batches in Ray 2.60 (nor later, so far).
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")


def ray_batches(
    factory: Callable[[], Guard],
    batches: Iterable[list[Row]],
    columns: ColumnMap,
    *,
    reasoning: bool,
    options: dict[str, Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Check ``batches`` (lists of ``(row_id, row)``) on a Ray actor pool; yields the output rows of each batch in
    the order the batches came, each exactly what :func:`~guardsdk.scan.rows.verdict_columns` gives on it locally.

    ``options``: ``address`` (None: ``$RAY_ADDRESS`` or a local Ray of ``num_cpus`` CPUs; ``"auto"``: the cluster
    this node belongs to), ``concurrency`` (actors; default: the cluster's CPUs / ``num_cpus_per_actor``),
    ``batch_size`` (rows per actor call; default: the runner's batches as they are, which keeps the output
    identical to the local engine's), ``chunk_rows`` (rows queued ahead of the actors, default
    :data:`DEFAULT_CHUNK_ROWS`), ``num_cpus_per_actor`` (default 1; also each actor's torch / llama.cpp threads;
    below 1 for server-backed guards, whose actors mostly wait), ``runtime_env`` (passed to ``ray.init``:
    ``pip`` / ``py_modules`` for a cluster without guardsdk), ``num_cpus`` (a local Ray's CPUs)."""
    options = dict(options or {})
    ray = import_ray()
    groups = _regroup(batches, options.get("batch_size"))
    first = next(groups, None)
    if first is None:  # nothing left to check (a finished scan resumed): no Ray to start
        return
    _quiet_warnings()
    started = start_ray(options.get("address"), options.get("num_cpus"), options.get("runtime_env"))
    feed: _Feed | None = None
    try:
        per_actor = float(options.get("num_cpus_per_actor") or 1)
        concurrency = int(options.get("concurrency") or default_concurrency(per_actor))
        batch_size = options.get("batch_size")
        chunk_rows = int(options.get("chunk_rows") or DEFAULT_CHUNK_ROWS)
        ahead = max(2 * concurrency, chunk_rows // max(int(batch_size or 16), 1))
        logger.info("ray engine: %d actors of %s CPU, %d batches queued ahead", concurrency, per_actor, ahead)
        with _data_context(ray):
            feed = _Feed(itertools.chain([first], groups), maxsize=ahead)
            dataset = ray.data.read_datasource(_QueueSource(feed.queue), num_cpus=0, override_num_blocks=1)
            dataset = dataset.map_batches(
                GuardActor,
                fn_constructor_kwargs={"factory": factory, "columns": columns, "reasoning": reasoning,
                                       "threads": max(1, int(per_actor))},
                batch_size=1,  # one batch of the runner per call: the local engine's unit of work
                batch_format="numpy",
                # One batch per actor at a time, not retried: an actor that dies (a crash, os._exit, out of memory)
                # is restarted, and its one batch comes back as undecided rows, never checked again and again.
                compute=ray.data.ActorPoolStrategy(size=concurrency, max_tasks_in_flight_per_actor=1),
                num_cpus=per_actor, max_restarts=-1, max_task_retries=0,
            )  # fmt: skip
            try:
                yield from _results(dataset.iter_rows(), feed, reasoning)
            except ray.exceptions.RayError as exc:  # one line: the CLI prints it
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise RuntimeError(f"ray engine: {type(exc).__name__}: {first}") from exc
        if feed.error is not None:
            raise feed.error
    finally:
        if feed is not None:
            feed.close()
        if started:
            ray.shutdown()


__all__ = ["DEFAULT_CHUNK_ROWS", "INSTALL_HINT", "GuardActor", "import_ray", "ray_batches", "start_ray"]
