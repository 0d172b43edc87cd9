"""The ``evaluate`` stage: does each training stage help, on the held-out split and held-out mined pairs?"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from guardsdk_trainer.data import interleave_by_labels
from guardsdk_trainer.heldout import baseline_f1, model_f1, preference_accuracy

if TYPE_CHECKING:
    from guardsdk_trainer.recipe import Recipe

logger = logging.getLogger("guardsdk_trainer")


def evaluate(recipe: Recipe) -> dict[str, Any]:
    """Held-out F1 per task of the no-reasoning baseline, the R-SFT model, the model after the bootstrap
    rounds (when there were any) and the HS-DPO model; HS-DPO's preference accuracy on held-out pairs before
    (the model it started from: the newest R-SFT one) and after."""
    cfg = recipe.config.evaluate
    # Taken in turns across label combinations (prompt-only and reply rows alike), not the first rows of a pool
    # sorted by source: the response tasks get held-out rows too.
    labelled = [e for e in recipe.examples("eval") if any(e.labels.values())]
    held_out = interleave_by_labels(labelled, recipe.config.data.seed)[: cfg.max_inputs]
    train = recipe.examples("train")
    baseline = baseline_f1(train, held_out, recipe.config.data.seed)
    report: dict[str, Any] = {"eval_rows": len(held_out), "baseline": baseline}
    models = {"rsft": recipe.path("models", "rsft")}
    if recipe.current_rsft() != models["rsft"]:
        models["bootstrap"] = recipe.current_rsft()  # the R-SFT model after the bootstrap rounds: HS-DPO's start
    if recipe.done("hsdpo"):
        models["hsdpo"] = recipe.path("models", "hsdpo")
    for name, folder in models.items():
        engine = "llamacpp" if recipe.config.sample.engine == "llamacpp" else "hf"
        figures = model_f1(folder, held_out, cfg.max_new_tokens, cfg.batch_size, engine, recipe.config.sample.threads)
        report[name] = {"model": folder.name, **figures}
    pairs = recipe.pairs("pairs-held-out")
    if pairs and "hsdpo" in models:
        report["preference_accuracy"] = {
            "before": preference_accuracy(recipe.current_rsft(), pairs, recipe.config.hsdpo.max_length),
            "after": preference_accuracy(models["hsdpo"], pairs, recipe.config.hsdpo.max_length),
        }
    for name in ("baseline", *models):
        logger.info("evaluate: %s held-out F1 %s", name,
                    {task: f["f1"] for task, f in report[name]["tasks"].items()})  # fmt: skip
    if "preference_accuracy" in report:
        acc = report["preference_accuracy"]
        logger.info("evaluate: preference accuracy on %d held-out pairs: %s before HS-DPO, %s after",
                    acc["before"]["pairs"], acc["before"]["accuracy"], acc["after"]["accuracy"])  # fmt: skip
    return report
