"""Score the bundled guardreasoner-tiny for its model card, with its TF-IDF + LR baseline, in one run.

1. Benchmarks it never saw in training: ToxicChat, OpenAIModeration (prompt harmfulness), SafeRLHF,
   BeaverTails (response harmfulness), and PoolRefusalHeldOut: the recipe's held-out split (data/eval.jsonl)
   of the pool's human-labelled refusal rows (Do-Not-Answer), written as a benchmark file.
2. The baseline: TF-IDF + logistic regression fitted on the recipe's training split of the same pool
   (data/train.jsonl), predicting the same items.
3. ``guardsdk eval`` runs the shipped GGUF on those items (a seeded sample of each, ``--sample``);
   ``guardsdk eval --rescore`` scores both side by side (paper protocol and robust protocol).

Usage: .venv/bin/python benchmarks/training/eval_guardreasoner_tiny.py [--run runs/guardreasoner-tiny]
       [--sample 400 | --sample 0]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS, read_jsonl

UNSEEN = ("ToxicChat", "OpenAIModeration", "SafeRLHF", "BeaverTails")
HUMAN_REFUSAL_SOURCES = ("do-not-answer",)


def benchmarks_dir(run: Path) -> Path:
    """The four unseen paper benchmarks (linked) and the pool's held-out human refusal rows (written)."""
    from guardsdk.eval.benchmarks import POOL_REFUSAL, benchmark
    from guardsdk.verdict import REFUSAL
    from guardsdk_trainer.data import Example, write_benchmark

    folder = run / "card-benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    for name in UNSEEN:
        link = folder / f"{benchmark(name).file_stem}.json"
        if not link.exists():
            link.symlink_to(SHARED_BENCHMARKS / link.name)
    held_out = [Example.from_json(r) for r in read_jsonl(run / "data" / "eval.jsonl")]
    human = [e for e in held_out if e.source in HUMAN_REFUSAL_SOURCES and e.response is not None]
    count = write_benchmark(human, REFUSAL, folder / f"{POOL_REFUSAL.file_stem}.json")
    print(f"{POOL_REFUSAL.name}: {count} held-out human-labelled refusal rows")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/guardreasoner-tiny", help="the recipe's output_dir")
    parser.add_argument("--gguf", help="default: the bundled guardreasoner-tiny")
    parser.add_argument("--sample", type=int, default=400, help="seeded random items per benchmark (0: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    from guardsdk.cli import main as guardsdk_main
    from guardsdk.detectors.resolve import bundled_tiny_path
    from guardsdk.eval.benchmarks import POOL_REFUSAL, benchmark
    from guardsdk_trainer.baseline import TfidfBaseline
    from guardsdk_trainer.data import Example

    args.gguf = args.gguf or str(bundled_tiny_path())
    run = Path(args.run)
    folder = benchmarks_dir(run)
    names = [*UNSEEN, POOL_REFUSAL.name]
    out = run / ("card-eval" if args.sample else "card-eval-full")
    sample = args.sample or None

    train = [Example.from_json(r) for r in read_jsonl(run / "data" / "train.jsonl")]
    baseline = TfidfBaseline().fit(train)
    print(f"baseline trained on {baseline.train_sizes} labelled training rows per task")
    baseline.write_predictions(folder, out / "tfidf-lr-baseline", [benchmark(n) for n in names], sample=sample)

    model_args = ["--gguf", args.gguf, "--threads", str(args.threads), "--batch-size", "1", "--no-progress"]
    bench_args = [a for n in names for a in ("--benchmark", n)]
    sampling = ["--sample", str(sample)] if sample else []
    guardsdk_main(["eval", *model_args, "--benchmarks-dir", str(folder), *bench_args, *sampling,
                   "--out", str(out / "guardreasoner-tiny")])  # fmt: skip
    report = run / f"{out.name}-report"
    code = guardsdk_main(["eval", "--rescore", str(out), "--out", str(report), "--json", str(report / "scores.json")])
    sys.exit(code)


if __name__ == "__main__":
    main()
