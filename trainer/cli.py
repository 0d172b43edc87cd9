"""``guardsdk-train data|synth|rsft|bootstrap|sample|mine|hsdpo|export|classifier|recipe|smoke CONFIG``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from guardsdk_trainer.config import load_config
from guardsdk_trainer.recipe import STAGES, Recipe, StageOrderError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guardsdk-train", description="The GuardReasoner training recipe.")
    parser.add_argument(
        "stage",
        choices=[*STAGES, "recipe", "smoke"],
        help="one stage, the whole recipe, or smoke (the recipe, "
        "then each stage's seconds, tokens/s and MFU, and a few checks through the SDK on its model)",
    )
    parser.add_argument("config", help="a recipe YAML config")
    parser.add_argument("--force", action="store_true", help="rerun the stage even if it is done")
    parser.add_argument("--output-dir", help="override the config's output_dir")
    args = parser.parse_args(argv)
    # Logs go to stderr; stdout holds only the stage result (JSON), so it can be piped.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    config = load_config(args.config)
    if args.output_dir:
        config.output_dir = args.output_dir
    recipe = Recipe(config)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # trainers print their log lines: not into the result
            result = _run(recipe, args.stage, args.force)
    except StageOrderError as exc:
        print(f"guardsdk-train: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


def _run(recipe: Recipe, stage: str, force: bool) -> dict[str, Any]:
    if stage == "recipe":
        return {k: v["metrics"] for k, v in recipe.run()["stages"].items()}
    if stage == "smoke":
        from guardsdk_trainer.smoke import smoke

        return smoke(recipe)
    if stage != "data" and not recipe.done("data"):
        recipe.run_stage("data")
    return recipe.run_stage(stage, force=force)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
