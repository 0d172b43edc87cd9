"""Error answers of the service, in OpenAI's error shape: ``{"error": {"message", "type", "code", "param"}}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ServiceError(Exception):
    """An answer other than success: HTTP ``status`` with an OpenAI-style error object."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "code": self.code, "param": None, **self.extra}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)
