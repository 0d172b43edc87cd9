"""How far does the prompt head's benchmark F1 move with its seed alone? (issue: fast classifier detector)

The prompt head is fitted as the ``classifier`` stage fits it (``fit_task_head``, the shipped config) once per
seed, saved beside the shipped refusal and response heads, and scored by ``guardsdk eval`` on every item of the
two unseen prompt sets (ToxicChat, OpenAIModeration); weighted F1 by size, as the model card reports it. This
measures the spread of a choice already made: the shipped heads are seed 0 whatever it prints.
Needs the stage's data split (``runs/classifier-minilm/data/train.jsonl``, written by ``guardsdk-train``).

Usage: .venv/bin/python benchmarks/classifier/classifier_seed_spread.py [--seeds 0 1 2] [--out runs/classifier-seeds]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import ROOT, SHARED_BENCHMARKS, read_jsonl

PROMPT_SETS = {"ToxicChat": 2853, "OpenAIModeration": 1680}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default=str(ROOT / "trainer/configs/classifier-minilm.yaml"))
    parser.add_argument("--data", default=str(ROOT / "runs/classifier-minilm/data/train.jsonl"))
    parser.add_argument("--out", default=str(ROOT / "runs/classifier-seeds"))
    args = parser.parse_args()
    from guardsdk.cli import main as guardsdk_main
    from guardsdk.detectors.classifier.detector import bundled_heads_path
    from guardsdk.detectors.classifier.heads import load_heads, save_heads
    from guardsdk.verdict import PROMPT_HARM
    from guardsdk_trainer.classifier import fit_task_head, stage_cache, task_rows
    from guardsdk_trainer.config import load_config
    from guardsdk_trainer.data import Example

    cfg = load_config(args.config).classifier
    texts, labels, sources = task_rows([Example(**row) for row in read_jsonl(args.data)], PROMPT_HARM)
    cache = stage_cache(cfg)
    heads, config = load_heads(bundled_heads_path())
    print("| seed | " + " | ".join(PROMPT_SETS) + " | prompt wF1 |\n|---|---|---|---|")
    for seed in args.seeds:
        seeded = dataclasses.replace(cfg, seed=seed)
        heads[PROMPT_HARM], _ = fit_task_head(cache, texts, labels, seeded, PROMPT_HARM, random.Random(seed), sources)
        folder = save_heads(Path(args.out) / f"seed-{seed}" / "heads", heads, config)
        scored = Path(args.out) / f"seed-{seed}" / "eval"
        sets = [arg for name in PROMPT_SETS for arg in ("--benchmark", name)]
        model = ["--family", "classifier", "--model", str(folder), "--benchmarks-dir", str(SHARED_BENCHMARKS)]
        guardsdk_main(["eval", *model, *sets, "--batch-size", "64", "--no-progress", "--out", str(scored / "heads")])
        report = scored.parent / "report"
        guardsdk_main(["eval", "--rescore", str(scored), "--out", str(report), "--json", str(report / "scores.json")])
        f1 = {name: _f1(report / "scores.json", name) for name in PROMPT_SETS}
        weighted = sum(f1[name] * n for name, n in PROMPT_SETS.items()) / sum(PROMPT_SETS.values())
        print(f"| {seed} | " + " | ".join(f"{f1[name]:.2f}" for name in PROMPT_SETS) + f" | {weighted:.2f} |")


def _f1(scores: Path, benchmark: str) -> float:
    """The F1 of ``benchmark`` in a rescore's JSON of one model (the paper protocol)."""
    return float(json.loads(scores.read_text(encoding="utf-8"))["paper"][benchmark]["f1"])


if __name__ == "__main__":
    main()
