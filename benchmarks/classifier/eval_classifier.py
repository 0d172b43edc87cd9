"""Score the bundled classifier on all ten offline GuardReasoner benchmarks, with its TF-IDF baseline, in one run.

The classifier's training pool has no benchmark overlap (shared/data/README.md), so every set is unseen.
1. The baseline: TF-IDF + logistic regression fitted on the classifier stage's training split
   (<run>/data/train.jsonl), predicting every item.
2. ``guardsdk eval --family classifier`` on every item (the bundled heads, or --heads).
3. ``guardsdk eval --rescore`` scores both side by side with the paper's GuardReasoner rows.

Usage: .venv/bin/python benchmarks/classifier/eval_classifier.py [--run runs/classifier-minilm] [--heads DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import SHARED_BENCHMARKS, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/classifier-minilm", help="the classifier stage's output_dir")
    parser.add_argument("--heads", default=None, help="a heads folder (default: the bundled heads)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from guardsdk.cli import main as guardsdk_main
    from guardsdk.eval.benchmarks import BENCHMARKS
    from guardsdk_trainer.baseline import TfidfBaseline
    from guardsdk_trainer.data import Example

    run = Path(args.run)
    out = run / "eval-full"
    train = [Example.from_json(r) for r in read_jsonl(run / "data" / "train.jsonl")]
    baseline = TfidfBaseline().fit(train)
    print(f"baseline trained on {baseline.train_sizes} labelled training rows per task")
    baseline.write_predictions(SHARED_BENCHMARKS, out / "tfidf-lr-baseline", BENCHMARKS)
    model_args = ["--family", "classifier", "--threads", str(args.threads), "--batch-size", "64", "--no-progress"]
    if args.heads:
        model_args += ["--model", args.heads]
    guardsdk_main(["eval", *model_args, "--benchmarks-dir", str(SHARED_BENCHMARKS), "--out", str(out / "classifier")])
    report = run / "eval-full-report"
    code = guardsdk_main(["eval", "--rescore", str(out), "--out", str(report), "--json", str(report / "scores.json")])
    sys.exit(code)


if __name__ == "__main__":
    main()
