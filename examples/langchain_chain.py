"""A LangChain LCEL chain with guardsdk input and output guards (a fake chat model: no network).

Run: .venv/bin/python examples/langchain_chain.py
"""

from __future__ import annotations

from _common import BENIGN_PROMPT, HARMFUL_PROMPT, demo_guard, recorded_response
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from guardsdk import GuardBlocked
from guardsdk.integrations.langchain import guard_runnables


class PrintVerdicts(BaseCallbackHandler):
    def on_custom_event(self, name, data, **kwargs):  # type: ignore[override]
        print(f"  [{name}] allowed={data['allowed']} labels={data['labels']}")


def main() -> None:
    guard_in, guard_out = guard_runnables(demo_guard())
    model = GenericFakeChatModel(messages=iter([recorded_response(BENIGN_PROMPT)] * 3))
    chain = (
        ChatPromptTemplate.from_messages([("human", "{question}")]) | guard_in | model | guard_out | StrOutputParser()
    )
    config = {"callbacks": [PrintVerdicts()], "tags": ["example"]}
    print("invoke:", chain.invoke({"question": BENIGN_PROMPT}, config=config)[:80].replace("\n", " "), "...")
    print("stream:", sum(1 for _ in chain.stream({"question": BENIGN_PROMPT}, config=config)), "chunks")
    try:
        chain.invoke({"question": HARMFUL_PROMPT}, config=config)
    except GuardBlocked as blocked:
        print("blocked:", blocked)


if __name__ == "__main__":
    main()
