"""``guardsdk serve``: the guard over HTTP — a check API and an OpenAI-compatible guarded proxy.

:func:`create_app` builds the FastAPI app around a :class:`~guardsdk.guard.Guard` and a :class:`ServiceConfig`;
:func:`serve` runs it with uvicorn. See docs/service.md.
"""

from guardsdk.service.app import create_app, serve
from guardsdk.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app", "serve"]
