"""``guardsdk serve``: the guard over HTTP — a check API and an OpenAI-compatible guarded proxy.

:func:`create_app` builds the FastAPI app around a :class:`~guardsdk.guard.Guard` and a :class:`ServiceConfig`;
:func:`serve` runs it with uvicorn. See docs/service.md. FastAPI is imported only when the app is built.
"""

from typing import Any

from guardsdk.service.config import OnBlock, ServiceConfig


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from guardsdk.service import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["OnBlock", "ServiceConfig", "create_app", "serve"]
