"""Typed errors raised by guardsdk."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from guardsdk.verdict import Verdict


class GuardError(Exception):
    """Base class of every guardsdk error."""


class InvalidInputError(GuardError, ValueError):
    """The prompt or response cannot be checked (wrong type, NUL, lone surrogate, empty prompt)."""


class BackendError(GuardError):
    """The model backend failed to produce an output."""


class ModelNotFoundError(BackendError, FileNotFoundError):
    """The model file, folder or hub id could not be found or loaded."""


class UnguardedEndpointError(GuardError, AttributeError):
    """An LLM-calling entry point that guardsdk does not guard; it raises rather than pass through unchecked."""


class UncheckedFieldError(InvalidInputError):
    """A request carries text in a field the guard does not check (a message key, a content-part key, an
    ``extra_body`` key): refused unless the caller passes that field by name."""


class GuardBlocked(GuardError):
    """The policy blocked a prompt or response; ``verdict`` says why (``verdict.decision.reason``, the raw output
    and the reasoning are for the app's logs). The message is the decision's summary alone — task names, never
    the guard's output, reasoning or error text — so an app may show it to the user it blocked."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.decision.summary if verdict.decision else "blocked")


def describe(exc: BaseException) -> str:
    """``"ErrorType: message"`` (or just the type when there is no message), for verdicts and logs."""
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def redacted_url(url: object) -> str:
    """``url`` as logs and error messages may show it: no user name or password, ``;params``, query or fragment (where
    keys hide), for scheme-less URLs too; never raises (an unparseable URL is not shown at all)."""
    text = str(url)
    scheme_less = not _SCHEME.match(text)
    try:
        parts = urlsplit("//" + text if scheme_less else text)
    except ValueError:
        return "<unparseable URL>"
    _, at, host = parts.netloc.rpartition("@")
    path = re.sub(r";[^/]*", ";***", parts.path)
    shown = urlunsplit((parts.scheme, ("***@" if at else "") + host, path, "***" if parts.query else "", ""))
    return shown[2:] if scheme_less and shown.startswith("//") else shown
