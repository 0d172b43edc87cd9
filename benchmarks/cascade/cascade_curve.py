"""The cascade's curve: for each band, the share of checks sent to the reasoning guard and the cascade's F1.

Exact and offline: the classifier (the bundled heads, or --heads) scores every item of the six benchmarks
whose GuardReasoner outputs are published, and those outputs (1B and 8B) are replayed as the reasoning stage.
The reasoning stage's cost per item is estimated from its real token counts (Llama 3 tokenizer) at the rates
measured on this machine for a 1B-shape Q4_K_M model (--prefill-tps, --decode-tps); the classifier's cost is
measured here, single checks, one thread.

Usage: .venv/bin/python benchmarks/cascade/cascade_curve.py [--out runs/cascade-curve]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import PREDICTIONS, SHARED_BENCHMARKS

if TYPE_CHECKING:
    from guardsdk import Guard

PUBLISHED = ("AegisSafetyTest", "HarmBenchPrompt", "SimpleSafetyTests", "HarmBenchResponse", "XSTestReponseHarmful",
             "XSTestResponseRefusal")  # fmt: skip
#: Sets of real user traffic (no published reasoning outputs): only the share the classifier decides alone.
TRAFFIC = ("ToxicChat", "OpenAIModeration")
LOWS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
HIGHS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0)


def classifier_scores(guard: Guard, name: str) -> tuple[list, list[float]]:
    from guardsdk.eval.benchmarks import benchmark, load_items

    spec = benchmark(name)
    items = load_items(SHARED_BENCHMARKS, spec)
    verdicts = guard.check_batch([(i.prompt, i.response) if i.response is not None else i.prompt for i in items])
    return items, [v.scores.get(spec.task, math.nan) for v in verdicts]


def reasoning_labels(size: str, name: str, task: str, tokenizer, rates: tuple[float, float]) -> dict[str, tuple]:
    """model input -> (the published output's label, its estimated seconds on this CPU)."""
    from guardsdk.backends.replay import ReplayBackend
    from guardsdk.families import get_family
    from guardsdk.families.guardreasoner.template import has_response

    family = get_family("guardreasoner")
    records = ReplayBackend.from_predictions([PREDICTIONS / size / name / "generated_predictions.jsonl"])
    out = {}
    for model_input, output in records.records.items():
        verdict = family.parse([output], has_response=has_response(model_input), conversation=model_input)
        seconds = len(tokenizer.encode(model_input)) / rates[0] + len(tokenizer.encode(output)) / rates[1]
        out[model_input] = (verdict.labels[task], seconds)
    return out


def single_check_ms(guard: Guard, prompts: list[str]) -> float:
    times = []
    for prompt in prompts:
        started = time.perf_counter()
        guard.check(prompt)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", default=None, help="a classifier heads folder (default: the bundled heads)")
    parser.add_argument("--out", default="runs/cascade-curve")
    parser.add_argument("--prefill-tps", type=float, default=120.0)
    parser.add_argument("--decode-tps", type=float, default=45.0)
    args = parser.parse_args()
    from guardsdk import Guard, OnUnsafe, Policy
    from guardsdk.eval.benchmarks import benchmark
    from guardsdk.eval.cascade_curve import CascadeItem, curve, pareto
    from guardsdk.eval.scoring import gold_label
    from guardsdk.tools.tiny_model import llama3_tokenizer

    guard = Guard(args.heads, family="classifier", policy=Policy(on_unsafe=OnUnsafe.ANNOTATE), threads=2)
    tokenizer = llama3_tokenizer()
    scored = {name: classifier_scores(guard, name) for name in PUBLISHED}
    sizes = {name: benchmark(name).size for name in PUBLISHED}
    guard.detector.encoder.threads = 1  # single checks on one thread, as deployed
    classifier_ms = single_check_ms(guard, [i.prompt for i in scored["AegisSafetyTest"][0][:50]])
    result = {"classifier_ms_p50": classifier_ms, "rates_tps": [args.prefill_tps, args.decode_tps], "models": {}}
    for size in ("1B", "8B"):
        items = []
        for name, (bench_items, scores) in scored.items():
            task = benchmark(name).task
            published = reasoning_labels(size, name, task, tokenizer, (args.prefill_tps, args.decode_tps))
            for item, score in zip(bench_items, scores, strict=True):
                label, seconds = published[item.model_input]
                items.append(CascadeItem(name, task, gold_label(item.label, task), score, label, seconds))
        points = curve(items, [(lo, hi) for lo in LOWS for hi in HIGHS], sizes)
        result["models"][size] = {"points": points, "pareto": pareto(points)}
        print(f"\n## GuardReasoner-{size} as the reasoning stage (classifier p50 {classifier_ms:.1f} ms)")
        header = ["low", "high", "sent to reasoning", "weighted F1", "est. mean s/check (1B rates)", *PUBLISHED]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * (5 + len(PUBLISHED)))
        for p in pareto(points):
            mean_s = classifier_ms / 1000 + p["reasoning_s_per_item"]
            cells = " | ".join(f"{p['f1'][n]:.2f}" for n in PUBLISHED)
            share = f"{100 * p['escalated']:.1f}%"
            print(f"| {p['low']} | {p['high']} | {share} | {p['weighted_f1']:.2f} | {mean_s:.2f} | {cells} |")
    guard.detector.encoder.threads = 2
    result["traffic"] = {}
    print("\n## Share the classifier decides alone on real user prompts (no reasoning outputs published)")
    print("| set | " + " | ".join(f"p <= {low}" for low in LOWS[1:5]) + " |")
    print("|" + "---|" * 5)
    for name in TRAFFIC:
        _, scores = classifier_scores(guard, name)
        shares = {low: sum(s <= low for s in scores) / len(scores) for low in LOWS[1:5]}
        result["traffic"][name] = shares
        print(f"| {name} | " + " | ".join(f"{100 * v:.1f}%" for v in shares.values()) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\nwrote {out / 'curve.json'}")


if __name__ == "__main__":
    main()
