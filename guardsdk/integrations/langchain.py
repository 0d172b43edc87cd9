"""LangChain runnables that guard the input and the output of a chain (langchain-core >= 1).

```python
guard_in, guard_out = guard_runnables(guard)
chain = prompt | guard_in | chat_model | guard_out | StrOutputParser()
```

``guard_in`` checks what reaches the model — a str, a PromptValue, a message list — and passes it
through unchanged; ``guard_out`` checks the model's AIMessage (or streamed AIMessageChunks, with window
checks, see :mod:`guardsdk.integrations.streaming`) against the prompt its ``guard_in`` saw in the same chain run,
and passes it through. A block raises :class:`~guardsdk.errors.GuardBlocked` inside the chain. Both
support invoke/ainvoke/batch/abatch/stream/astream and RunnableConfig (callbacks, tags, run_name), and
report each verdict as a LangChain custom event named ``"guardsdk_verdict"`` (``on_custom_event`` in
callback handlers, ``astream_events``), and on annotate as ``response_metadata["guardsdk"]`` of messages.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig

from guardsdk.errors import InvalidInputError
from guardsdk.integrations.checks import Checks, prompt_stage, response_stage
from guardsdk.integrations.streaming import StreamChecker, StreamConfig, aguarded_chunks, guarded_chunks
from guardsdk.texts.conversation import request_prompt
from guardsdk.texts.outputs import output_texts
from guardsdk.verdict import Verdict

EVENT = "guardsdk_verdict"


def prompt_text(value: Any) -> str:
    """The prompt a guard checks for a chain input: str, PromptValue, or messages (every message but the
    leading system prompt, see :mod:`guardsdk.texts.conversation`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, PromptValue):
        return request_prompt(value.to_messages())
    if isinstance(value, BaseMessage):
        return request_prompt([value])
    if isinstance(value, (list, tuple)):
        return request_prompt(value)
    raise InvalidInputError(f"cannot guard a chain input of type {type(value).__name__}")


def _event(verdict: Verdict) -> dict[str, Any]:
    return {
        "labels": verdict.labels,
        "allowed": verdict.allowed,
        "reason": verdict.decision.reason if verdict.decision else None,
        "parse_status": verdict.parse_status.value,
        "model": verdict.model,
    }


def _with_metadata(value: Any, verdicts: list[Verdict]) -> Any:
    if isinstance(value, BaseMessage) and hasattr(value, "response_metadata"):
        value.response_metadata["guardsdk"] = [_event(v) for v in verdicts]
    return value


class _Prompts:
    """Prompts that passed the input guard, by the id of the chain run around it; the oldest are dropped
    past ``limit`` (a run whose model call failed never collects its prompt)."""

    def __init__(self, limit: int = 1024) -> None:
        self.by_run: OrderedDict[UUID | None, str] = OrderedDict()
        self.limit = limit

    def put(self, run_id: UUID | None, prompt: str) -> None:
        self.by_run[run_id] = prompt
        self.by_run.move_to_end(run_id)
        while len(self.by_run) > self.limit:
            self.by_run.popitem(last=False)


class GuardInput(Runnable[Any, Any]):
    """Checks a chain's model input; passes it through."""

    def __init__(self, guard: Checks, prompts: _Prompts | None = None, name: str = "GuardInput") -> None:
        self.guard = guard
        self.prompts = prompts or _Prompts()
        self.name = name
        self.gated = prompt_stage(guard, name)  # a policy that gates no prompt task: prompts pass, counted

    def _check(self, value: Any, run_manager: Any, config: RunnableConfig) -> Any:
        text = prompt_text(value)
        if self.gated:
            dispatch_custom_event(EVENT, _event(self.guard.check(text)), config=config)
        else:
            self.guard.count_event("ungated_prompts")
        self.prompts.put(run_manager.parent_run_id, text)
        return value

    async def _acheck(self, value: Any, run_manager: Any, config: RunnableConfig) -> Any:
        text = prompt_text(value)
        if self.gated:
            await adispatch_custom_event(EVENT, _event(await self.guard.acheck(text)), config=config)
        else:
            self.guard.count_event("ungated_prompts")
        self.prompts.put(run_manager.parent_run_id, text)
        return value

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._check, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._acheck, input, config, run_type="chain")


class GuardOutput(Runnable[Any, Any]):
    """Checks a chain's model output against the prompt its :class:`GuardInput` saw; passes it through."""

    def __init__(self, guard: Checks, prompts: _Prompts | None = None, stream: StreamConfig | None = None,
                 name: str = "GuardOutput") -> None:  # fmt: skip
        self.counter = guard
        self.guard = response_stage(guard, name)  # None: the policy gates no response task (outputs pass, counted)
        self.prompts = prompts or _Prompts()
        self.stream_config = stream or StreamConfig()
        self.name = name

    def _prompt(self, run_manager: Any) -> str:
        text = self.prompts.by_run.pop(run_manager.parent_run_id, None)
        if text is None:
            raise InvalidInputError("GuardOutput found no prompt: put a GuardInput of the same pair before the model")
        return text

    def _check(self, value: Any, run_manager: Any, config: RunnableConfig) -> Any:
        prompt = self._prompt(run_manager)
        if self.guard is None:
            self.counter.count_event("ungated_responses")
            return value
        verdicts = []
        for text in output_texts(value):  # content and tool calls
            verdicts.append(self.guard.check(prompt, text))
            dispatch_custom_event(EVENT, _event(verdicts[-1]), config=config)
        return _with_metadata(value, verdicts)

    async def _acheck(self, value: Any, run_manager: Any, config: RunnableConfig) -> Any:
        prompt = self._prompt(run_manager)
        if self.guard is None:
            self.counter.count_event("ungated_responses")
            return value
        verdicts = []
        for text in output_texts(value):
            verdicts.append(await self.guard.acheck(prompt, text))
            await adispatch_custom_event(EVENT, _event(verdicts[-1]), config=config)
        return _with_metadata(value, verdicts)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._check, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._acheck, input, config, run_type="chain")

    def _transform(self, chunks: Iterator[Any], run_manager: Any, config: RunnableConfig) -> Iterator[Any]:
        prompt = self._prompt(run_manager)
        if self.guard is None:
            self.counter.count_event("ungated_responses")
            yield from chunks
            return
        checker = StreamChecker(self.guard, prompt, self.stream_config)
        try:
            yield from guarded_chunks(checker, chunks)
        finally:
            for verdict in checker.verdicts:
                dispatch_custom_event(EVENT, _event(verdict), config=config)

    async def _atransform(
        self, chunks: AsyncIterator[Any], run_manager: Any, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        prompt = self._prompt(run_manager)
        if self.guard is None:
            self.counter.count_event("ungated_responses")
            async for chunk in chunks:
                yield chunk
            return
        checker = StreamChecker(self.guard, prompt, self.stream_config)
        try:
            async for chunk in aguarded_chunks(checker, chunks):
                yield chunk
        finally:
            for verdict in checker.verdicts:
                await adispatch_custom_event(EVENT, _event(verdict), config=config)

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self._transform_stream_with_config(input, self._transform, config, run_type="chain")

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, run_type="chain"):
            yield chunk

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async def once() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(once(), config, **kwargs):
            yield chunk


async def guarded_astream_events(
    runnable: Runnable[Any, Any],
    input: Any,
    config: RunnableConfig | None = None,
    *,
    output_guard: str = "GuardOutput",
    **kwargs: Any,
) -> AsyncIterator[dict[str, Any]]:
    """``runnable.astream_events(input, config, version="v2", **kwargs)`` without the events that carry the model's
    unguarded output.

    LangChain emits a chat model's tokens (``on_chat_model_stream``) and its whole message (``on_chat_model_end``)
    as the model makes them, before ``guard_out`` has judged them, and a step between the model and ``guard_out``
    shows them in its own events: a plain ``astream_events`` hands a blocked response to whoever reads the event
    stream. This keeps only what cannot carry unjudged output: the events of the root runnable (its input, and
    the output chunks that passed every step, ``guard_out`` included), ``guard_out``'s released chunks
    (``on_chain_stream`` of the runnable named ``output_guard``) and the ``"guardsdk_verdict"`` custom events. Every
    other event is dropped, whatever its kind: the event stream cannot tell which steps come after ``guard_out``.
    A block ends the stream with :class:`~guardsdk.errors.GuardBlocked`, as ``astream`` does."""
    async for event in runnable.astream_events(input, config, version="v2", **kwargs):
        root = not event.get("parent_ids")
        released = event["event"] == "on_chain_stream" and event.get("name") == output_guard
        verdict = event["event"] == "on_custom_event" and event.get("name") == EVENT
        if root or released or verdict:
            yield event


def guard_runnables(guard: Checks, *, stream: StreamConfig | None = None) -> tuple[GuardInput, GuardOutput]:
    """An input guard and an output guard that share the prompts they see."""
    prompts = _Prompts()
    return GuardInput(guard, prompts), GuardOutput(guard, prompts, stream)
