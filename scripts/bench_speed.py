"""Reasoning-guard speed on this CPU, side by side in one run (issue: CPU speed of the reasoning guard).

Part 1, end to end on a GGUF guard model (default: the bundled guardreasoner-tiny), the same prompt checks
through each path, one thread count, medians:
  deploy         the deploy-style path: the whole input evaluated for every check (no prefix reuse)
  sdk            today's SDK path: Guard(model), the shared instruction reused from the KV cache
  needed_tasks   Guard(model, mode="needed_tasks"): reasoning about Task 1 only, then the answer forced
  verdict_first  Guard(model, mode="verdict_first", reason_when=()): the answer read right after the input
with each path's agreement with the sdk path's prompt verdicts (and, for deploy, the share of identical text).

Part 2, for a GuardReasoner-1B-shape model: a random-weight GGUF of its shape (--shape-gguf; built by
--build-shape DIR) measures the component costs on this CPU (prefill, one decode step, a batch of k tokens
with logits for each, as draft verification needs), and the published GuardReasoner-1B outputs on the
prompt benchmarks give the token counts of each path; their product is the modelled seconds per check.

Usage: .venv/bin/python scripts/bench_speed.py [--checks 40] [--threads 2] [--shape-gguf PATH]
       .venv/bin/python scripts/bench_speed.py --build-shape /tmp/gr1b   (once: ~6 GB of disk while it builds)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from guardsdk import Guard, Policy
from guardsdk.backends.llamacpp import LlamaCppBackend
from guardsdk.eval.benchmarks import BENCHMARKS, load_items
from guardsdk.families.guardreasoner import ANSWERS_HEADING
from guardsdk.families.guardreasoner.template import INSTRUCTION
from guardsdk.model_resolution import bundled_tiny_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PROMPT_SETS = ("ToxicChat", "OpenAIModeration", "AegisSafetyTest", "SimpleSafetyTests", "HarmBenchPrompt")
PUBLISHED_PROMPT_SETS = ("AegisSafetyTest", "HarmBenchPrompt", "SimpleSafetyTests")
LEAD = ANSWERS_HEADING + "Request:"
ANNOTATE = Policy(on_unsafe="annotate")


def sample_prompts(count: int) -> list[str]:
    specs = [spec for spec in BENCHMARKS if spec.name in PROMPT_SETS]
    per_set = -(-count // len(specs))
    prompts = [item.prompt for spec in specs for item in load_items(SHARED / "benchmarks", spec, sample=per_set)]
    return prompts[:count]


# -- part 1: end to end --------------------------------------------------------------------------------
def run_path(name: str, backend: LlamaCppBackend, prompts: list[str]) -> tuple[list[float], list]:
    modes = {"deploy": "single", "sdk": "single", "needed_tasks": "needed_tasks", "verdict_first": "verdict_first"}
    options = {"reason_when": ()} if name == "verdict_first" else {}
    guard = Guard(backend, mode=modes[name], policy=ANNOTATE, **options)
    guard.check("warm-up: the shared instruction goes into the KV cache")
    seconds, verdicts = [], []
    for prompt in prompts:
        if name == "deploy":
            backend.llm.reset()  # a server without prefix reuse evaluates the whole input each time
        started = time.perf_counter()
        verdicts.append(guard.check(prompt))
        seconds.append(time.perf_counter() - started)
    return seconds, verdicts


def end_to_end(model: Path, prompts: list[str], threads: int) -> list[dict]:
    backend = LlamaCppBackend(model, n_threads=threads)
    paths = ("deploy", "sdk", "needed_tasks", "verdict_first")
    results = {name: run_path(name, backend, prompts) for name in paths}
    backend.close()
    sdk_seconds, sdk_verdicts = results["sdk"]
    rows = []
    for name in paths:
        seconds, verdicts = results[name]
        pairs = list(zip(verdicts, sdk_verdicts, strict=True))
        same = sum(v.labels["prompt_harm"] == s.labels["prompt_harm"] for v, s in pairs)
        text = sum(v.raw == s.raw for v, s in pairs) if name == "deploy" else None
        rows.append({
            "path": name,
            "median_s": statistics.median(seconds),
            "mean_s": statistics.fmean(seconds),
            "speedup_vs_deploy": statistics.median(results["deploy"][0]) / statistics.median(seconds),
            "speedup_vs_sdk": statistics.median(sdk_seconds) / statistics.median(seconds),
            "median_tokens_out": statistics.median(v.tokens_out for v in verdicts),
            "same_verdict_as_sdk": f"{same}/{len(prompts)}",
            "same_text_as_sdk": None if text is None else f"{text}/{len(prompts)}",
        })  # fmt: skip
    return rows


# -- part 2: the 1B shape, modelled from component costs -----------------------------------------------
def build_shape(out: Path) -> Path:
    """A random-weight GGUF (Q4_K_M) of GuardReasoner-1B's shape (Llama-3.2-1B)."""
    from guardsdk.tools.gguf_export import convert_hf_to_gguf, quantize
    from guardsdk.tools.tiny_model import build_tiny_llama

    shape = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
             "num_key_value_heads": 8, "initializer_range": 0.02}  # fmt: skip
    hf = build_tiny_llama(out / "hf", **shape)
    f16 = convert_hf_to_gguf(hf, out / "gr1b-shape-f16.gguf", "f16")
    return quantize(f16, out / "gr1b-shape-Q4_K_M.gguf", "Q4_K_M")


def timed(action, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def component_costs(model: Path, threads: int) -> dict[str, float]:
    """Seconds for: prefill of n tokens after a 107-token prefix, one decode step, k tokens in one batch with
    logits for each (verification of k-1 drafted tokens)."""
    backend = LlamaCppBackend(model, n_threads=threads)
    llm = backend.llm
    prefix = backend.input_ids(INSTRUCTION + "\n")
    filler = backend.tokenize(" the guard reads this text" * 200)

    def evaluate(count: int, logits_for_each: bool = False) -> None:
        llm.n_tokens = len(prefix)
        tokens = filler[:count]
        if logits_for_each:
            llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=True)
            llm._ctx.decode(llm._batch)
        else:
            llm.eval(tokens)

    llm.reset()
    llm.eval(prefix)
    costs = {f"prefill_{n}": timed(lambda n=n: evaluate(n)) for n in (8, 32, 128, 512)}
    costs["step"] = timed(lambda: evaluate(1), repeats=7)
    for k in (2, 4, 8):
        costs[f"verify_{k}"] = timed(lambda k=k: evaluate(k, logits_for_each=True), repeats=5)
    backend.close()
    return costs


def prefill_seconds(costs: dict[str, float], tokens: int) -> float:
    """Linear between the measured prefill sizes (per-token rate of the nearest size above, at most 512)."""
    sizes = [8, 32, 128, 512]
    size = next((s for s in sizes if tokens <= s), 512)
    return costs[f"prefill_{size}"] * tokens / size


def published_token_counts(tokenizer: LlamaCppBackend) -> list[dict[str, int]]:
    """Per published GuardReasoner-1B prompt check: user tokens, output tokens, Task-1 reasoning tokens."""
    counts = []
    for name in PUBLISHED_PROMPT_SETS:
        path = SHARED / "predictions" / "1B" / name / "generated_predictions.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            output = row["predict"]
            conversation = row["prompt"][len(INSTRUCTION) + 1 :]
            task1 = output.split("# Task 2")[0] if "# Task 2" in output else output
            counts.append({
                "user": len(tokenizer.tokenize(conversation)),
                "out": len(tokenizer.tokenize(output)) + 1,  # + end of turn
                "task1": len(tokenizer.tokenize(task1)),
            })  # fmt: skip
    return counts


def modelled(costs: dict[str, float], counts: list[dict[str, int]], instruction: int, lead: int) -> list[dict]:
    """Seconds per check of each path; ``instruction``: tokens of the shared instruction, ``lead``: of the
    forced answer lead."""
    paths = {
        "deploy": lambda c: prefill_seconds(costs, instruction + c["user"]) + c["out"] * costs["step"],
        "sdk": lambda c: prefill_seconds(costs, c["user"]) + c["out"] * costs["step"],
        "needed_tasks": lambda c: prefill_seconds(costs, c["user"]) + c["task1"] * costs["step"]
        + prefill_seconds(costs, lead),
        "verdict_first": lambda c: prefill_seconds(costs, c["user"] + lead),
    }  # fmt: skip
    seconds = {name: [path(c) for c in counts] for name, path in paths.items()}
    return [{"path": name, "median_s": statistics.median(s), "mean_s": statistics.fmean(s),
             "speedup_vs_deploy": statistics.median(seconds["deploy"]) / statistics.median(s),
             "speedup_vs_sdk": statistics.median(seconds["sdk"]) / statistics.median(s)}
            for name, s in seconds.items()]  # fmt: skip


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=bundled_tiny_path(), help="GGUF for part 1")
    parser.add_argument("--checks", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape-gguf", type=Path, help="a GuardReasoner-1B-shape GGUF for part 2")
    parser.add_argument("--build-shape", type=Path, metavar="DIR", help="build that GGUF in DIR, then run")
    args = parser.parse_args()
    if args.build_shape:
        args.shape_gguf = build_shape(args.build_shape)
    prompts = sample_prompts(args.checks)
    print(f"## Part 1: end to end, {args.model.name}, {len(prompts)} prompt checks, {args.threads} threads\n")
    print(table(end_to_end(args.model, prompts, args.threads)))
    if args.shape_gguf:
        costs = component_costs(args.shape_gguf, args.threads)
        tokenizer = LlamaCppBackend(args.shape_gguf, n_threads=1, vocab_only=True)
        counts = published_token_counts(tokenizer)
        print(f"\n## Part 2: {args.shape_gguf.name}, component costs (s), {args.threads} threads\n")
        print(table([costs]))
        print("\nverify k / one step: " + ", ".join(f"k={k} {costs[f'verify_{k}'] / costs['step']:.2f}x"
                                                   for k in (2, 4, 8)))  # fmt: skip
        medians = {k: statistics.median(c[k] for c in counts) for k in ("user", "out", "task1")}
        print(f"\n## Part 2: modelled seconds per prompt check, {len(counts)} published 1B outputs "
              f"(median tokens: {medians})\n")  # fmt: skip
        instruction, lead = len(tokenizer.input_ids(INSTRUCTION + "\n")), len(tokenizer.tokenize(LEAD))
        print(table(modelled(costs, counts, instruction, lead)))


if __name__ == "__main__":
    main()
