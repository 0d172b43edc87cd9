"""Fit the classifier stage's multilingual heads (``multilingual: true``) for a heads folder already trained, without
refitting its MiniLM heads: the run's own training and held-out splits, the stage's rows and fit
(``fit_multilingual_heads``), written beside a copy of the folder's heads. A full ``guardsdk-train classifier`` run with
``multilingual: true`` fits both at once; this adds the multilingual heads to heads that were shipped before it.

    .venv/bin/python scripts/add_multilingual_heads.py --run runs/classifier-minilm-written \\
        --heads guardsdk/models/guard-classifier-minilm --out runs/classifier-multilingual
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import shutil
from pathlib import Path

from guardsdk.detectors.classifier.heads import CONFIG_FILE, HEADS_FILE, PAIR, HeadsConfig, save_heads
from guardsdk_trainer.classifier import fit_multilingual_heads, head_rows, sized
from guardsdk_trainer.config import load_config
from guardsdk_trainer.recipe import Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a classifier run's output folder (its data stage is done)")
    parser.add_argument("--config", default="trainer/configs/classifier-minilm.yaml")
    parser.add_argument("--heads", required=True, help="the heads folder to add multilingual heads to")
    parser.add_argument("--out", required=True, help="where the heads and the multilingual heads are written")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = load_config(args.config)
    recipe = Recipe(dataclasses.replace(config, output_dir=args.run))
    train, held_out = recipe.examples("train"), recipe.examples("eval")
    cfg = dataclasses.replace(config.classifier, multilingual=True)
    heads = HeadsConfig(**json.loads((Path(args.heads) / CONFIG_FILE).read_text(encoding="utf-8")))
    rng = random.Random(cfg.seed)
    rows = {task: (sized(head_rows(train, task, cfg), cfg, rng), head_rows(held_out, task, cfg))
            for task, reads in heads.inputs.items() if reads != PAIR}  # fmt: skip
    foreign, heads.multilingual = fit_multilingual_heads(rows, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(args.heads) / HEADS_FILE, out / HEADS_FILE)
    save_heads(out, {}, heads, foreign)  # the MiniLM heads' file is the copy; the config gains ``multilingual``
    print(json.dumps(heads.multilingual["training"], indent=1))


if __name__ == "__main__":
    main()
