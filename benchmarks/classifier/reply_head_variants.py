"""Response-harm head variants, fitted with the classifier stage's own code on its training split (pool only), each
saved beside the bundled prompt and refusal heads for ``reply_precision.py`` to score (issue #27, item 3).

    .venv/bin/python benchmarks/classifier/reply_head_variants.py [--out runs/reply-variants]

Variants: ``all-sources`` (the 2026-11-30 config's rows), ``context-free`` (DiaSafety and DICES left out: they label a
reply by its dialogue), and each of those with ``sentence-negatives`` (a benign reply's sentences, pooled in context,
taught as benign, as the prompt head learns of a benign prompt's; its clauses are then not read alone, which the head
never learnt); ``pair``: the response head of ``classifier-minilm-pair.yaml`` (``pair_tasks``: each part of a reply read
beside its prompt, with shuffled harmless prompts and first-sentence negatives; ``fit_pair_head``).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, where `benchmarks` imports from
from benchmarks._common import ROOT

CONFIG = ROOT / "trainer" / "configs" / "classifier-minilm.yaml"
PAIR_CONFIG = ROOT / "trainer" / "configs" / "classifier-minilm-pair.yaml"
CONTEXT_LABELLED = ["diasafety", "dices"]
VARIANTS = {
    "all-sources": ([], ["prompt"]),
    "all-sources+sentence-negatives": ([], ["prompt", "response"]),
    "context-free": (CONTEXT_LABELLED, ["prompt"]),
    "context-free+sentence-negatives": (CONTEXT_LABELLED, ["prompt", "response"]),
    "pair": ([], ["prompt", "response"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/reply-variants", help="one heads folder per variant is written here")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="fit these variants only")
    args = parser.parse_args()
    import torch

    from guardsdk.detectors.classifier import bundled_heads_path
    from guardsdk.detectors.classifier.heads import PAIR, load_heads, save_heads
    from guardsdk.verdict import RESPONSE_HARM
    from guardsdk_trainer import data as data_mod
    from guardsdk_trainer.classifier import (
        fit_pair_head,
        fit_task_head,
        head_rows,
        rows_metrics,
        stage_cache,
        task_rows,
    )
    from guardsdk_trainer.classifier_pairs import HeadRows, harmless_prompts
    from guardsdk_trainer.config import load_config

    config = load_config(CONFIG)
    examples = [e for path in config.data.pool for e in data_mod.load_pool(path)]
    examples, _ = data_mod.exclude_benchmarks(data_mod.deduplicate(examples), config.data.exclude)
    train, held_out = data_mod.split(examples, config.data.eval_fraction, config.data.seed)
    bundled, bundled_config = load_heads(bundled_heads_path())
    cache = stage_cache(config.classifier)
    saved = Path(args.out) / "embeddings.pt"  # the responses' embeddings, kept: encoding them is most of the run
    if saved.exists():
        cache.rows, cache.parts = torch.load(saved)
    cache.encode(task_rows(train, RESPONSE_HARM)[0], parts=True)  # every variant's texts, each read once
    saved.parent.mkdir(parents=True, exist_ok=True)
    torch.save((cache.rows, cache.parts), saved)
    for name in args.only or VARIANTS:
        exclude, pooled = VARIANTS[name]
        if name == "pair":  # the config's pair head, its texts encoded into the kept cache first
            cfg = load_config(PAIR_CONFIG).classifier
            rows = head_rows(train, RESPONSE_HARM, cfg)
            head, counts = fit_pair_head(
                cache, rows, cfg, RESPONSE_HARM, random.Random(cfg.seed), harmless_prompts(train, cfg)
            )
            torch.save((cache.rows, cache.parts), saved)
            inputs, labels = {**bundled_config.inputs, RESPONSE_HARM: PAIR}, rows.labels
        else:
            cfg = dataclasses.replace(config.classifier, pooled_sentences=pooled, pair_tasks=[])
            texts, labels, sources = task_rows(train, RESPONSE_HARM, exclude)
            head, counts = fit_task_head(cache, texts, labels, cfg, RESPONSE_HARM, random.Random(cfg.seed), sources)
            inputs = bundled_config.inputs
        clause_roles = ["prompt"] if "response" in pooled else ["prompt", "response"]  # as it was trained
        # the stage's held-out metrics, as train_classifier reports them
        test = (
            head_rows(held_out, RESPONSE_HARM, cfg)
            if name == "pair"
            else HeadRows([], *task_rows(held_out, RESPONSE_HARM, exclude))
        )
        counts["held_out"] = rows_metrics(head, cache, test, cfg.threshold)
        heads_config = dataclasses.replace(bundled_config, pooled_sentences=pooled, clause_roles=clause_roles,
                                           inputs=inputs, training={**bundled_config.training,
                                           "response_variant": name, RESPONSE_HARM: counts})  # fmt: skip
        folder = save_heads(Path(args.out) / name, {**bundled, RESPONSE_HARM: head}, heads_config)
        print(
            f"{name}: {counts['train_rows']} rows, {sum(labels)} harmful, {counts.get('part_negatives', '-')} sentence "
            f"negatives -> {folder}",
            flush=True,
        )


if __name__ == "__main__":
    main()
