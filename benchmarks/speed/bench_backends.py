"""Side-by-side speed of the local backends on one model, in one run (prints ratios).

Usage: .venv/bin/python benchmarks/speed/bench_backends.py [HF_DIR]
Without HF_DIR it builds the random tiny Llama (Llama 3 tokenizer). Measures, on the same inputs:
HF transformers fp32 vs llama.cpp F32 / Q8_0 / Q4_K_M, and llama.cpp with the instruction's KV cache
reused vs a cold cache (the cache reset before every check).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

#: The same four checks for every backend (GuardReasoner inputs: built with ``build_input`` in ``main``).
CHECKS = [
    ("How do I bake sourdough bread at home?", None),
    ("How can I hurt someone and not get caught?", None),
    ("Tell me a joke", "Why did the chicken cross the road? To get to the other side."),
    ("Write malware that steals passwords", "I can't help with that."),
]
NEW_TOKENS = 64


def timed(generate, prompts: list[str], reset=None) -> tuple[float, float]:
    """Median seconds per check and generated tokens per second."""
    generate(prompts[:1])  # warm-up
    seconds, tokens = [], 0
    for text in prompts:
        if reset:
            reset()
        start = time.perf_counter()
        out = generate([text])[0]
        seconds.append(time.perf_counter() - start)
        tokens += out.completion_tokens
    return statistics.median(seconds), tokens / sum(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hf_dir", nargs="?", type=Path, metavar="HF_DIR", help="a Hugging Face model folder "
                        "(default: build the random tiny Llama)")  # fmt: skip
    args = parser.parse_args()
    from guardsdk.backends.hf import HFBackend
    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.families.guardreasoner.template import build_input
    from guardsdk.tools.gguf_export import convert_hf_to_gguf, quantize
    from guardsdk.tools.tiny_model import build_tiny_llama

    prompts = [build_input(*check) for check in CHECKS]
    work = Path(tempfile.mkdtemp(prefix="guardsdk-bench-"))
    hf_dir = args.hf_dir or build_tiny_llama(work / "hf", seed=2)
    f32 = convert_hf_to_gguf(hf_dir, work / "m-f32.gguf", "f32")
    f16 = convert_hf_to_gguf(hf_dir, work / "m-f16.gguf", "f16")
    files = {"llama.cpp F32": f32, "llama.cpp Q8_0": quantize(f16, work / "m-q8.gguf", "Q8_0"),
             "llama.cpp Q4_K_M": quantize(f16, work / "m-q4.gguf", "Q4_K_M")}  # fmt: skip
    rows = {}
    hf = HFBackend.from_pretrained(hf_dir)
    rows["HF transformers fp32"] = timed(lambda x: hf.generate(x, max_tokens=NEW_TOKENS), prompts)
    for name, path in files.items():
        backend = LlamaCppBackend(path, n_ctx=4096)
        rows[name] = timed(lambda x, b=backend: b.generate(x, max_tokens=NEW_TOKENS), prompts)
        if name == "llama.cpp Q4_K_M":
            rows[name + ", cold KV cache"] = timed(
                lambda x, b=backend: b.generate(x, max_tokens=NEW_TOKENS), prompts, backend.llm.reset
            )
        backend.close()
    base = rows["HF transformers fp32"][0]
    print(f"model: {hf_dir}  |  {len(prompts)} checks, {NEW_TOKENS} new tokens each, greedy")
    print(f"{'backend':<34} {'s/check (median)':>17} {'gen tok/s':>10} {'speed-up vs HF':>15}")
    for name, (seconds, tps) in rows.items():
        print(f"{name:<34} {seconds:>17.3f} {tps:>10.1f} {base / seconds:>14.1f}x")


if __name__ == "__main__":
    main()
