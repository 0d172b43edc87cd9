"""``guardsdk-train data|synth|rsft|bootstrap|sample|mine|hsdpo|export|recipe CONFIG``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from guardsdk_trainer.config import load_config
from guardsdk_trainer.recipe import STAGES, Recipe, StageOrderError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guardsdk-train", description="The GuardReasoner training recipe.")
    parser.add_argument("stage", choices=[*STAGES, "recipe"], help="one stage, or the whole recipe")
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
        if args.stage == "recipe":
            result = recipe.run()
            print(json.dumps({k: v["metrics"] for k, v in result["stages"].items()}, indent=1))
        else:
            if args.stage != "data" and not recipe.done("data"):
                recipe.run_stage("data")
            print(json.dumps(recipe.run_stage(args.stage, force=args.force), indent=1))
    except StageOrderError as exc:
        print(f"guardsdk-train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
