"""How often should the pool's real user prompts count in the prompt head's fit? (issue: fast classifier detector)

The pool's one source of real user prompts with their natural mix is ToxicChat's train split (2,293 prompts, 275
harmful; not the benchmark). Two folds over it, by a hash of the text: the prompt head is fitted as the
``classifier`` stage fits it (``fit_task_head``, the shipped config, ``source_repeats`` set to each value asked) on
the rest of the training split plus one half of that source, and the other half is read through the real detector;
F1 (harmful positive, threshold 0.5) over both halves is printed per value. 0 leaves the source out. The heads'
embeddings are encoded once (float32, as the stage does).
Needs the stage's data split (``runs/classifier-minilm/data/train.jsonl``, written by ``guardsdk-train``).

Usage: .venv/bin/python benchmarks/classifier/classifier_source_repeats.py [--repeats 0 1 4 16] [--source toxicchat]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import ROOT, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, nargs="+", default=[0, 1, 4, 16])
    parser.add_argument("--source", default="toxicchat", help="the pool source split into folds")
    parser.add_argument("--config", default=str(ROOT / "trainer/configs/classifier-minilm.yaml"))
    parser.add_argument("--data", default=str(ROOT / "runs/classifier-minilm/data/train.jsonl"))
    args = parser.parse_args()
    from guardsdk.detectors.classifier.detector import ClassifierDetector
    from guardsdk.eval.scoring import binary_scores
    from guardsdk.policy import Policy
    from guardsdk.verdict import PROMPT_HARM
    from guardsdk_trainer.classifier import fit_task_head, stage_cache, task_rows
    from guardsdk_trainer.config import load_config
    from guardsdk_trainer.data import Example

    cfg = load_config(args.config).classifier
    texts, labels, sources = task_rows([Example(**row) for row in read_jsonl(args.data)], PROMPT_HARM)
    folds = [[i for i, s in enumerate(sources) if s == args.source and _fold(texts[i]) == f] for f in (0, 1)]
    rest = [i for i, s in enumerate(sources) if s != args.source]
    harmful = [sum(labels[i] for i in fold) for fold in folds]
    print(f"{args.source}: folds of {len(folds[0])} / {len(folds[1])} prompts ({harmful[0]} / {harmful[1]} harmful)")
    detector = ClassifierDetector.from_pretrained()  # the shipped heads; its prompt head is swapped per fit
    started = time.time()
    cache = stage_cache(cfg)
    print("| repeats | F1 | tp | fp | fn |\n|---|---|---|---|---|")
    for repeats in args.repeats:
        fit_cfg = dataclasses.replace(cfg, source_repeats={**cfg.source_repeats, args.source: repeats})
        truth, predicted = [], []
        for dev, train in ((folds[0], folds[1]), (folds[1], folds[0])):
            rows = rest + train
            detector.heads[PROMPT_HARM], _ = fit_task_head(
                cache, [texts[i] for i in rows], [labels[i] for i in rows], fit_cfg, PROMPT_HARM,
                random.Random(cfg.seed), [sources[i] for i in rows],
            )  # fmt: skip
            verdicts = detector.detect([(texts[i], None) for i in dev], Policy(), time.monotonic() + 3600)
            truth += [labels[i] for i in dev]
            predicted += [int(v.scores[PROMPT_HARM] >= cfg.threshold) for v in verdicts]
        counts = binary_scores(truth, predicted, positive=1)
        row = f"| {repeats} | {counts.f1:.2f} | {counts.tp} | {counts.fp} | {counts.fn} |"
        print(f"{row}  ({time.time() - started:.0f} s)")


def _fold(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2


if __name__ == "__main__":
    main()
