"""``guard.wrap(OpenAI(...))``: an OpenAI client whose completions are guarded.

``chat.completions.create`` and ``completions.create`` keep their signatures and return types: the
prompt (every message but the app's leading system prompt, as in :mod:`guardsdk.texts.conversation`, or each
prompt string) is checked before the request, and every choice of the answer after it, tool calls
included; a stream is checked as it runs (see :mod:`guardsdk.integrations.streaming`) and comes back as an iterator of
the same chunk objects, closing the upstream stream when stopped early. Verdicts are attached as
``result.guard_verdicts`` (and on the stream object), and blocked calls raise :class:`~guardsdk.errors.GuardBlocked`
(a stopped stream raises :class:`~guardsdk.integrations.streaming.StreamBlocked`).

No entry point passes through unchecked. ``with_options(...)`` and ``copy(...)`` return a guarded client;
``models``, ``embeddings``, ``moderations``, ``files`` and the client's settings are the wrapped client's;
every other attribute (``responses``, ``beta``, ``with_raw_response``, ``chat.completions.parse``, ...)
raises :class:`~guardsdk.errors.UnguardedEndpointError`. ``guarded.unwrapped`` hands out the raw client
by explicit choice (logged at WARNING, counted as ``unguarded_client`` in ``guard.stats``). Token-id
prompts and audio output are refused (:class:`~guardsdk.errors.InvalidInputError`): a guard checks text. A legacy
completion's ``suffix`` is checked with its prompt.

Fields the guard does not read are refused (:class:`~guardsdk.errors.UncheckedFieldError`) unless passed by name
(``wrap(..., pass_fields=...)``; each passed field is counted as ``passed_fields`` and logged at WARNING when
wrapping): an ``extra_body`` key (an upstream may read text from it, as vLLM does from ``documents`` and
``chat_template``), and a message or content-part key beside the ones :mod:`guardsdk.texts.conversation` reads
(``messages.KEY``, ``messages.content.KEY``). An ``extra_body`` key that is a parameter of ``create`` itself is
refused always: it would replace what was checked (``extra_body={"messages": [...]}``).

The policy's gates say which checks run: no prompt check where it gates no prompt task (``--gate response_harm``),
no response check where it gates no response task; each skipped check is counted (``ungated_prompts``,
``ungated_responses``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Collection, Mapping
from typing import Any

from guardsdk.errors import InvalidInputError, UncheckedFieldError, UnguardedEndpointError
from guardsdk.integrations.checks import Checks, prompt_stage, response_stage
from guardsdk.integrations.openai_streams import AsyncGuardedStream, GuardedStream
from guardsdk.integrations.streaming import StreamChecker, StreamConfig
from guardsdk.texts.conversation import refuse_unchecked, request_prompt
from guardsdk.texts.outputs import output_texts
from guardsdk.verdict import Verdict

logger = logging.getLogger("guardsdk")


#: Client attributes that call no LLM: handed through unchanged.
PASS_THROUGH = frozenset({"models", "embeddings", "moderations", "files", "close", "is_closed", "base_url",
                          "api_key", "organization", "project", "timeout", "max_retries", "default_headers",
                          "default_query"})  # fmt: skip


def _attach(obj: Any, verdicts: list[Verdict]) -> Any:
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(obj, "guard_verdicts", tuple(verdicts))
    return obj


def passed_extra_body(kwargs: dict[str, Any], parameters: Collection[str], passed: Collection[str]) -> list[str]:
    """The ``extra_body`` keys of a create call that ``passed`` lets through; raises :class:`UncheckedFieldError`
    for any other, and always for one that names one of ``create``'s ``parameters`` (it would replace a checked
    one)."""
    extra = kwargs.get("extra_body")
    if extra is None:
        return []
    if not isinstance(extra, Mapping):
        raise InvalidInputError(f"extra_body must be a mapping, not {type(extra).__name__}")
    shadowing = sorted(set(extra) & set(parameters))
    if shadowing:
        raise UncheckedFieldError(f"extra_body sets {shadowing}, which create() takes as arguments: the request "
                                  "would replace what the guard checked; pass them as arguments")  # fmt: skip
    refused = sorted(set(extra) - set(passed))
    if refused:
        why = "the upstream may read text from them; pass them by name (guard.wrap(..., pass_fields=...))"
        raise UncheckedFieldError(f"extra_body fields {refused} are not checked by the guard, and {why}")
    return sorted(extra)


def _prompts_of(kwargs: dict[str, Any], passed: Collection[str] = ()) -> list[str]:
    """The prompt texts of a create call (one per legacy completions prompt, its ``suffix`` included: the model
    reads both); token ids, audio output a text guard cannot read, and message fields it does not read (unless
    ``passed``) are refused."""
    modalities = kwargs.get("modalities") or ()
    if kwargs.get("audio") is not None or any(m != "text" for m in modalities):
        raise InvalidInputError("guardsdk checks text: an answer with audio output cannot be checked")
    if "messages" in kwargs:
        kwargs["messages"] = list(kwargs["messages"])  # a generator would be spent by the check
        return [request_prompt(kwargs["messages"], passed)]
    prompt = kwargs.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise InvalidInputError("guardsdk checks text prompts: token-id or missing prompts cannot be checked")
    suffix = kwargs.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidInputError(f"a completion suffix must be text to be checked, not {type(suffix).__name__}")
    return [f"{p}\n{suffix}" if suffix else p for p in prompts]


def _pairs(prompts: list[str], result: Any, n: int) -> list[tuple[str, str]]:
    """(prompt, output) for every choice; a legacy completion's choice i answers prompt i // n."""
    pairs = []
    for position, (choice, text) in enumerate(zip(result.choices, output_texts(result), strict=True)):
        index = getattr(choice, "index", position)
        pairs.append((prompts[min(index // n, len(prompts) - 1)] if isinstance(index, int) else prompts[0], text))
    return pairs


class UnguardedNamespace:
    """Raises :class:`UnguardedEndpointError` for every attribute but the guarded ones given."""

    def __init__(self, path: str, **guarded: Any) -> None:
        self._path = path
        self.__dict__.update(guarded)

    def __getattr__(self, name: str) -> Any:
        raise UnguardedEndpointError(
            f"{self._path}.{name} is not guarded by guardsdk; use the guarded create(), or the raw client "
            "from guarded.unwrapped if you accept unchecked calls"
        )


class _GuardedCreate(UnguardedNamespace):
    """A ``create`` endpoint (chat or text completions) with checks around it; nothing else of it."""

    def __init__(
        self, path: str, endpoint: Any, guard: Checks, stream: StreamConfig, is_async: bool, passed: frozenset[str]
    ) -> None:
        super().__init__(path)
        self._endpoint = endpoint
        self._guard = guard
        self._check_prompts = prompt_stage(guard, f"guard.wrap: {path}")
        self._output_guard = response_stage(guard, f"guard.wrap: {path}")
        self._stream = stream
        self._is_async = is_async
        self._passed = passed
        self._parameters = frozenset(inspect.signature(endpoint.create).parameters)  # read once, not per call

    def _prepare(self, kwargs: dict[str, Any]) -> list[str]:
        """The prompts of a create call, its fields checked (refused, or passed and counted)."""
        passed = passed_extra_body(kwargs, self._parameters, self._passed)
        if kwargs.get("prediction") is not None:  # predicted output: text the model reads, that the guard does not
            if "prediction" not in self._passed:
                raise UncheckedFieldError("prediction is text the model reads and the guard does not check; pass it "
                                          "by name (pass_fields) to forward it")  # fmt: skip
            passed.append("prediction")
        prompts = _prompts_of(kwargs, self._passed)
        passed += refuse_unchecked(kwargs.get("messages") or (), self._passed)
        for _ in passed:
            self._guard.count_event("passed_fields")
        if kwargs.get("stream") and (len(prompts) > 1 or (kwargs.get("n") or 1) > 1):
            raise InvalidInputError("a guarded stream has one choice: use n=1 and one prompt, or stream=False")
        if not self._check_prompts:
            self._guard.count_event("ungated_prompts")
        return prompts

    def _stream_of(self, result: Any, prompt: str, verdicts: list[Verdict], cls: type[Any]) -> Any:
        if self._output_guard is None:
            self._guard.count_event("ungated_responses")
            return _attach(result, verdicts)
        return cls(result, StreamChecker(self._guard, prompt, self._stream), verdicts)

    def _output_pairs(self, prompts: list[str], result: Any, kwargs: dict[str, Any]) -> list[tuple[str, str]]:
        if self._output_guard is None:
            self._guard.count_event("ungated_responses")
            return []
        return _pairs(prompts, result, kwargs.get("n") or 1)

    def create(self, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acreate(**kwargs)
        prompts = self._prepare(kwargs)
        verdicts = [self._guard.check(p) for p in prompts] if self._check_prompts else []
        result = self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return self._stream_of(result, prompts[0], verdicts, GuardedStream)
        verdicts += [self._output_guard.check(p, t) for p, t in self._output_pairs(prompts, result, kwargs)]  # type: ignore[union-attr]
        return _attach(result, verdicts)

    async def _acreate(self, **kwargs: Any) -> Any:
        prompts = self._prepare(kwargs)
        verdicts = [await self._guard.acheck(p) for p in prompts] if self._check_prompts else []
        result = await self._endpoint.create(**kwargs)
        if kwargs.get("stream"):
            return self._stream_of(result, prompts[0], verdicts, AsyncGuardedStream)
        for prompt, text in self._output_pairs(prompts, result, kwargs):
            verdicts.append(await self._output_guard.acheck(prompt, text))  # type: ignore[union-attr]
        return _attach(result, verdicts)


class GuardedClient:
    """The wrapped client: guarded ``chat.completions.create`` and ``completions.create``; see the module
    docstring for what else it hands through and what it refuses."""

    def __init__(
        self, guard: Checks, client: Any, stream: StreamConfig | None = None, pass_fields: Collection[str] = ()
    ) -> None:
        import openai

        is_async = isinstance(client, openai.AsyncOpenAI)
        self._stream_config = stream or StreamConfig()
        self._client = client
        self.guard = guard
        self.pass_fields = frozenset(pass_fields)
        if self.pass_fields:
            logger.warning("guard.wrap: fields %s are passed to the upstream unchecked", sorted(self.pass_fields))
        settings = (guard, self._stream_config, is_async, self.pass_fields)
        self.chat = UnguardedNamespace("chat", completions=_GuardedCreate("chat.completions", client.chat.completions,
                                                                          *settings))  # fmt: skip
        self.completions = _GuardedCreate("completions", client.completions, *settings)

    @property
    def unwrapped(self) -> Any:
        """The raw client, whose calls are not checked: an explicit opt-out, logged and counted."""
        logger.warning("guardsdk: the raw OpenAI client was handed out; its calls are not checked")
        self.guard.count_event("unguarded_client")
        return self._client

    def _rewrapped(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> GuardedClient:
            rewrapped = getattr(self._client, name)(*args, **kwargs)
            return GuardedClient(self.guard, rewrapped, self._stream_config, self.pass_fields)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in PASS_THROUGH:
            return getattr(self._client, name)
        if name in ("with_options", "copy"):
            return self._rewrapped(name)
        raise UnguardedEndpointError(
            f"client.{name} is not guarded by guardsdk; use chat.completions.create / completions.create, or "
            "the raw client from guarded.unwrapped if you accept unchecked calls"
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()


def wrap(
    guard: Checks, client: Any, *, stream: StreamConfig | None = None, pass_fields: Collection[str] = ()
) -> GuardedClient:
    """Guard an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client; ``pass_fields``: fields the guard does not
    check that may reach the upstream all the same (see the module docstring)."""
    return GuardedClient(guard, client, stream, pass_fields)
