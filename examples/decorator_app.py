"""@guard.protect on an LLM-calling function: prompt check, response check, block or annotate, streams.

Run: .venv/bin/python examples/decorator_app.py   (offline)
"""

from __future__ import annotations

from _common import BENIGN_PROMPT, HARMFUL_PROMPT, demo_guard, recorded_response

from guardsdk import GuardBlocked, Policy
from guardsdk.integrations.decorator import last_verdicts
from guardsdk.integrations.streaming import StreamConfig


def fake_llm(prompt: str) -> str:
    """Stands in for a real LLM call: returns the response recorded for this prompt."""
    return recorded_response(prompt)


def main() -> None:
    guard = demo_guard()

    @guard.protect(on_block="Sorry, I can't help with that.")
    def answer(prompt: str) -> str:
        return fake_llm(prompt)

    print("benign :", answer(BENIGN_PROMPT)[:80].replace("\n", " "), "...")
    print("harmful:", answer(HARMFUL_PROMPT))
    print("  why  :", last_verdicts()[0].reasoning.get("prompt_harm", "")[:200].replace("\n", " "))

    @guard.protect()
    def strict(prompt: str) -> str:
        return fake_llm(prompt)

    try:
        strict(HARMFUL_PROMPT)
    except GuardBlocked as blocked:
        print("raised :", type(blocked).__name__, "-", blocked)

    annotating = demo_guard(Policy(on_unsafe="annotate"))

    @annotating.protect()
    def annotated(prompt: str) -> str:
        return fake_llm(prompt)

    result = annotated(HARMFUL_PROMPT)
    print(
        "annotate:",
        [v.decision.reason for v in result.guard_verdicts],
        "(result is still a str:",
        isinstance(result, str),
        ")",
    )

    @guard.protect(stream=StreamConfig(mode="hold_back", window_chars=300, overlap_chars=80))
    def stream(prompt: str):
        text = fake_llm(prompt)
        for i in range(0, len(text), 25):
            yield text[i : i + 25]

    streamed = "".join(stream(BENIGN_PROMPT))
    print(f"stream : {len(streamed)} characters released after {len(last_verdicts())} checks (windows + final)")


if __name__ == "__main__":
    main()
