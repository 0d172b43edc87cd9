"""Does unseen, deployment-like data support a prompt threshold other than 0.5? (issue: fast classifier detector)

The pool's class mix is not a deployment's, so the threshold stays 0.5 unless data the heads never saw says
otherwise. Real user prompts with their natural mix are in the pool as one source (ToxicChat's train split, not
the benchmark): the prompt head is fitted as the ``classifier`` stage fits it (``fit_task_head``, the shipped
config) on the training split without that source, the shipped heads' other tasks are kept, and the held-out
source's prompts are read through the real detector; F1 (harmful positive) at each threshold is printed.
Needs the stage's data split (``runs/classifier-minilm/data/train.jsonl``, written by ``guardsdk-train``).

Usage: .venv/bin/python benchmarks/classifier/classifier_heldout_threshold.py [--source toxicchat] [--out DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import ROOT, read_jsonl

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="toxicchat", help="the pool source held out")
    parser.add_argument("--config", default=str(ROOT / "trainer/configs/classifier-minilm.yaml"))
    parser.add_argument("--data", default=str(ROOT / "runs/classifier-minilm/data/train.jsonl"))
    parser.add_argument("--out", help="where the refitted heads go (default: a temporary folder)")
    args = parser.parse_args()
    from guardsdk.detectors.classifier.detector import ClassifierDetector, bundled_heads_path
    from guardsdk.detectors.classifier.heads import load_heads, save_heads
    from guardsdk.eval.scoring import binary_scores
    from guardsdk.policy import Policy
    from guardsdk.verdict import PROMPT_HARM
    from guardsdk_trainer.classifier import fit_task_head, stage_cache, task_rows
    from guardsdk_trainer.config import load_config
    from guardsdk_trainer.data import Example

    cfg = load_config(args.config).classifier
    texts, labels, sources = task_rows([Example(**row) for row in read_jsonl(args.data)], PROMPT_HARM)
    held = [i for i, s in enumerate(sources) if s == args.source]
    fit = [i for i, s in enumerate(sources) if s != args.source]
    print(f"held out: {len(held)} {args.source} prompts ({sum(labels[i] for i in held)} harmful); fit on {len(fit)}")
    started = time.time()
    cache = stage_cache(cfg)
    head, counts = fit_task_head(cache, [texts[i] for i in fit], [labels[i] for i in fit], cfg, PROMPT_HARM,
                                 random.Random(cfg.seed), [sources[i] for i in fit])  # fmt: skip
    print(f"prompt head fitted in {time.time() - started:.0f} s: {counts}")
    heads, config = load_heads(bundled_heads_path())
    heads[PROMPT_HARM] = head
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        save_heads(out, heads, config)
        detector = ClassifierDetector.from_pretrained(out)
        verdicts = detector.detect([(texts[i], None) for i in held], Policy(), time.monotonic() + 3600)
    scores = [v.scores[PROMPT_HARM] for v in verdicts]
    truth = [labels[i] for i in held]
    print("| threshold | F1 | tp | fp | fn |\n|---|---|---|---|---|")
    for threshold in THRESHOLDS:
        counts = binary_scores(truth, [int(score >= threshold) for score in scores], positive=1)
        print(f"| {threshold} | {counts.f1:.2f} | {counts.tp} | {counts.fp} | {counts.fn} |")


if __name__ == "__main__":
    main()
