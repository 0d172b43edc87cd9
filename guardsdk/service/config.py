"""The settings of a guard service."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from guardsdk.cache import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_S
from guardsdk.integrations.streaming import StreamConfig
from guardsdk.service.logs import LOG_FORMATS
from guardsdk.verdict import TASKS

#: The smallest hold-back: below it, a stream would be released in slivers, each costing a window check.
MIN_HOLDBACK_CHARS = 200


class OnBlock(str, enum.Enum):
    """How the proxy answers a blocked call."""

    ERROR = "error"  # an OpenAI error object (HTTP 400, code "content_blocked"); in a stream, an error event
    REFUSAL = "refusal"  # a normal completion whose text is the refusal, finish_reason "content_filter"


@dataclass(frozen=True)
class ServiceConfig:
    """What the service accepts and how it answers.

    ``api_keys``: bearer keys (none only on a loopback host). ``request_timeout_s``: the deadline of a request's
    checks, queue wait included; past it, 504 and an undecided verdict. ``max_concurrency`` requests run at once
    and ``max_queue`` more wait; beyond that, 429 with Retry-After. ``upstream``: the OpenAI-compatible base URL
    the proxy forwards to (no proxy without it). ``log_content``: put the checked text into block logs (off).
    ``pass_fields``: body fields OpenAI's API does not define that the proxy may forward (an upstream's extensions,
    e.g. vLLM's ``top_k``), and message or content-part keys the guard does not read (``messages.KEY``,
    ``messages.content.KEY``); every other such field is refused, since the guard cannot know whether the upstream
    reads text from it (vLLM's ``chat_template`` and ``documents`` do). Each passed field is counted.
    ``expose_reasoning``: show the guard's output and reasoning in answers about checks it did not allow (off: they
    may quote or continue the blocked text; see docs/service.md). ``check_gates`` and ``proxy_gates``: the gates of
    the check API (where a request names none) and of the proxy, each in place of the guard policy's (None: the
    policy's).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: frozenset[str] = frozenset()
    max_body_bytes: int = 1_000_000
    request_timeout_s: float = 60.0
    max_concurrency: int = 4
    max_queue: int = 64
    upstream: str | None = None
    upstream_api_key: str = "EMPTY"
    on_block: OnBlock = OnBlock.ERROR
    refusal: str = "I can't help with that request."
    log_content: bool = False
    cache_entries: int = DEFAULT_MAX_ENTRIES  # 0: no verdict cache
    cache_ttl_s: float = DEFAULT_TTL_S
    pass_fields: frozenset[str] = frozenset()  # proxy body fields beyond OpenAI's own, passed on unchecked (opt-in)
    expose_reasoning: bool = False  # opt-in: raw output and reasoning of blocked checks in answers
    stream: StreamConfig = field(default_factory=StreamConfig)
    check_gates: frozenset[str] | None = None  # the check API's default gates (None: the guard policy's)
    proxy_gates: frozenset[str] | None = None  # the proxy's gates (None: the guard policy's)
    batch_max_items: int = 32  # micro-batching: checks per coalesced detector call; 1 turns batching off
    batch_window_ms: float = 2.0  # how long the first check of a batch waits for others
    stream_holdback_chars: int | None = None  # a stream is checked and released every N characters (None: 600)
    otlp_endpoint: str | None = None  # an OTLP/HTTP collector for the check spans (guardsdk.tracing.export_otlp)
    log_format: str = "json"  # serve()'s log lines: "json" (one object a line, uvicorn's too) or "text"

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_block", OnBlock(self.on_block))
        object.__setattr__(self, "api_keys", frozenset(self.api_keys))
        object.__setattr__(self, "pass_fields", frozenset(self.pass_fields))
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}, not {self.log_format!r}")
        for name in ("check_gates", "proxy_gates"):
            gates = getattr(self, name)
            if gates is not None:
                if not gates or not set(gates) <= set(TASKS):
                    raise ValueError(f"{name} must be a non-empty set of tasks from {TASKS}")
                object.__setattr__(self, name, frozenset(gates))
        if self.max_body_bytes < 1 or self.max_concurrency < 1 or self.max_queue < 0:
            raise ValueError("need max_body_bytes >= 1, max_concurrency >= 1 and max_queue >= 0")
        if self.stream_holdback_chars is not None:  # how often text is released; each check still reads its context
            window = self.stream_holdback_chars
            if isinstance(window, bool) or not isinstance(window, int) or window < MIN_HOLDBACK_CHARS:
                raise ValueError(f"stream_holdback_chars must be an integer of at least {MIN_HOLDBACK_CHARS}")
            object.__setattr__(self, "stream", dataclasses.replace(self.stream, window_chars=window))
        if self.batch_max_items < 1 or not 0 <= self.batch_window_ms <= 1000:
            raise ValueError("need batch_max_items >= 1 and 0 <= batch_window_ms <= 1000")
        if not 0 < self.request_timeout_s < float("inf"):
            raise ValueError("request_timeout_s must be a positive number of seconds")
        if any(not key or key != key.strip() for key in self.api_keys):
            raise ValueError("API keys must be non-empty and have no surrounding whitespace")
