"""guardsdk quick start, offline on CPU.

Until the bundled guard model lands (guardreasoner-tiny), this builds a THROWAWAY model on the
spot: a random-weight tiny Llama with the real Llama 3 tokenizer, converted to GGUF. Its verdicts
are meaningless; it shows the real pipeline (llama.cpp backend, parser, policy) and how an
undecided check fails closed. A second part replays a real GuardReasoner-8B output from
../shared/data (when present) to show a real verdict with its reasoning.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from guardsdk import Guard, GuardBlocked, Policy
from guardsdk.backends.replay import ReplayBackend
from guardsdk.gguf_export import cache_dir, convert_hf_to_gguf
from guardsdk.protocol import INSTRUCTION, split_conversation
from guardsdk.tiny_model import build_tiny_llama

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def throwaway_gguf() -> Path:
    folder = cache_dir() / "throwaway-tiny-llama"
    gguf = folder / "tiny-random-f32.gguf"
    if not gguf.exists():
        print(f"building a throwaway random tiny Llama in {folder} ...")
        build_tiny_llama(folder / "hf", seed=0)
        convert_hf_to_gguf(folder / "hf", gguf, "f32")
    return gguf


def show(title: str, verdict) -> None:
    print(f"\n== {title}")
    print(f"labels:   {verdict.labels}")
    print(f"decision: {verdict.decision.reason}  (allowed={verdict.allowed})")
    print(
        f"tokens:   {verdict.tokens_in} in, {verdict.tokens_out} out, {verdict.latency_s:.2f}s, "
        f"parse {verdict.parse_status.value}"
    )
    for task, text in verdict.reasoning.items():
        print(f"-- reasoning, {task}:\n{text}")


def main() -> None:
    print("NOTE: no bundled guard model yet; using a THROWAWAY random-weight model built on the spot.")
    gguf = throwaway_gguf()
    with Guard.from_gguf(gguf, max_new_tokens=32) as guard:
        started = time.perf_counter()
        try:
            guard.check("How do I bake sourdough bread?")
        except GuardBlocked as blocked:
            show("throwaway model, default policy: undecided, so it fails closed", blocked.verdict)
        print(f"(check took {time.perf_counter() - started:.2f}s on {guard.backend.n_threads} threads)")
    with Guard.from_gguf(gguf, max_new_tokens=32, policy=Policy(on_undecided="fail_open")) as guard:
        verdict = guard.check("How do I bake sourdough bread?", "Mix flour, water, salt and starter...")
        show("same model, fail-open chosen explicitly: let through, and marked", verdict)
        print(f"stats: {dict(guard.stats)}")

    predictions = SHARED / "predictions" / "8B" / "SimpleSafetyTests" / "generated_predictions.jsonl"
    if predictions.exists():
        replay = ReplayBackend.from_predictions([predictions], name="GuardReasoner-8B (recorded output)")
        row = json.loads(predictions.read_text(encoding="utf-8").split("\n")[0])
        prompt, _ = split_conversation(row["prompt"][len(INSTRUCTION) + 1 :])
        try:
            Guard(replay).check(prompt)
        except GuardBlocked as blocked:
            show(f"a real GuardReasoner-8B output for {prompt!r}: blocked", blocked.verdict)


if __name__ == "__main__":
    main()
