"""The bootstrap stage: rejection sampling on labelled rows without a trace, then fine-tuning on the kept
traces (the offline teacher: it needs only labels and the current model)."""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import TYPE_CHECKING, Any

from guardsdk_trainer import data as data_mod
from guardsdk_trainer.config import SampleConfig
from guardsdk_trainer.data import Example
from guardsdk_trainer.errors import StageFailed
from guardsdk_trainer.manifest import label_counts

if TYPE_CHECKING:
    from guardsdk_trainer.recipe import Recipe

logger = logging.getLogger("guardsdk_trainer")


def run_bootstrap(recipe: Recipe) -> dict[str, Any]:
    """``bootstrap.rounds`` rounds; a finished round is in ``bootstrap/rounds.jsonl``, so a rerun resumes."""
    from guardsdk_trainer.hardsampling import sample_in_chunks
    from guardsdk_trainer.rsft import train_rsft
    from guardsdk_trainer.synthesis import clean_trace, consistent

    cfg = recipe.config.bootstrap
    sft = recipe.examples("sft")
    # Candidates must not depend on how far an interrupted run got: rows traced by earlier rounds count.
    logged = sorted(recipe.path("bootstrap").glob("round-*.jsonl"))
    earlier = [Example.from_json(row) for path in logged for row in data_mod.read_jsonl(path)]
    candidates = recipe.labelled_train_rows({e.id for e in sft} - {e.id for e in earlier}, seed=recipe.config.data.seed)
    sampling = SampleConfig(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            engine=recipe.config.sample.engine, threads=recipe.config.sample.threads,
                            chunk_inputs=recipe.config.sample.chunk_inputs)  # fmt: skip
    retrain = dataclasses.replace(recipe.config.rsft, epochs=cfg.epochs,
                                  learning_rate=cfg.learning_rate or recipe.config.rsft.learning_rate)  # fmt: skip
    log_path = recipe.path("bootstrap", "rounds.jsonl")
    rounds = data_mod.read_jsonl(log_path) if log_path.exists() else []
    traced = sft + earlier
    for number in range(len(rounds), cfg.rounds):  # finished rounds are in the log: a rerun resumes
        batch = candidates[number * cfg.inputs_per_round : (number + 1) * cfg.inputs_per_round]
        if not batch:
            break
        current = recipe.current_rsft()
        outputs = sample_in_chunks(current, batch, sampling, 1000 + number + recipe.config.data.seed,
                                   f"round {number + 1}: {cfg.n} outputs per input from {current.name}")  # fmt: skip
        added = []
        for example in batch:
            traces = [clean_trace(text) for text in outputs.get(example.id, [])]
            trace = next((t for t in traces if consistent(example, t)), None)
            if trace is not None:
                added.append(Example(example.prompt, example.response, example.labels, example.source, trace))
        data_mod.write_jsonl(recipe.path("bootstrap", f"round-{number + 1}.jsonl"), (e.to_json() for e in added))
        if added:
            replay = random.Random(number).sample(traced, min(len(traced), round(cfg.replay * len(added))))
            train_rsft(current, added + replay, recipe.path("models", f"bootstrap-{number + 1}"), retrain, "bootstrap")
        traced += added
        rounds.append({"round": number + 1, "tried": len(batch), "added": len(added),
                       "added_labels": label_counts(added)})  # fmt: skip
        data_mod.write_jsonl(log_path, rounds)
        logger.info("bootstrap round %d: %d of %d inputs gave a trace matching their labels",
                    number + 1, len(added), len(batch))  # fmt: skip
    if cfg.rounds and rounds and not any(r["added"] for r in rounds):
        tried = sum(r["tried"] for r in rounds)
        keys = ["bootstrap.inputs_per_round", "bootstrap.n", "bootstrap.max_new_tokens", "rsft.epochs"]
        raise StageFailed("bootstrap", f"0 traces kept from {tried} inputs tried", keys)
    return {"rounds": rounds, "sft_rows": len(traced), "added": len(traced) - len(sft)}
