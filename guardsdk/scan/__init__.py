"""``guardsdk scan``: a guard over every row of a JSONL, CSV or Parquet file (or a Hugging Face ``save_to_disk``
folder), streamed into a resumable output folder of the rows with their verdict columns (docs/scan.md).

This module is callable: ``guardsdk.scan(...)`` is :func:`~guardsdk.scan.runner.scan` (``guardsdk.scan`` is both the
package, once imported, and the function a notebook calls).
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from guardsdk.scan.columns import ColumnMap, RowError
from guardsdk.scan.rows import verdict_columns
from guardsdk.scan.runner import default_guard, local_engine, scan
from guardsdk.scan.summary import ScanSummary


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> ScanSummary:
        return scan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
# help(guardsdk.scan) and inspect.signature(guardsdk.scan) show the function a call runs, not (*args, **kwargs).
__signature__ = inspect.signature(scan)
__doc__ = f"{__doc__}\nguardsdk.scan{__signature__}\n\n    {scan.__doc__}"

__all__ = ["ColumnMap", "RowError", "ScanSummary", "default_guard", "local_engine", "scan", "verdict_columns"]
