"""``guardsdk-train data|synth|rsft|bootstrap|sample|mine|hsdpo|evaluate|export|classifier|recipe|smoke CONFIG``.

A problem the user can fix (a bad or missing config, a missing data file, a stage run before its input, a
stage that cannot produce its output) prints one line naming what to change, and exits 2: no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from guardsdk_trainer.config import RecipeConfig, load_config
from guardsdk_trainer.errors import TrainerError
from guardsdk_trainer.progress import quiet_library_bars, setup_logging
from guardsdk_trainer.recipe import STAGES, Recipe


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guardsdk-train", description="The GuardReasoner training recipe.")
    parser.add_argument(
        "stage",
        choices=[*STAGES, "recipe", "smoke"],
        help="one stage, the whole recipe, or smoke (the recipe, "
        "then each stage's seconds, tokens/s and MFU, and a few checks through the SDK on its model)",
    )
    parser.add_argument("config", help="a recipe YAML config")
    parser.add_argument(
        "--force",
        nargs="?",
        action="append",
        const="",
        default=[],
        metavar="STAGE",
        help="one stage: rerun it even if it is done; recipe: rerun STAGE and every stage after it (repeatable)",
    )
    parser.add_argument("--output-dir", help="override the config's output_dir")
    parser.add_argument("--seed", type=int, help="override data.seed, rsft.seed, hsdpo.seed (and sampling's)")
    args = parser.parse_args(argv)
    # Logs go to stderr; stdout holds only the stage result (JSON), so it can be piped.
    setup_logging()
    quiet_library_bars()
    signal.signal(signal.SIGTERM, _terminated)  # a killed stage is recorded as failed, not left half done
    try:
        force = _forced(args.stage, args.force)
        config = _load(args.config, args.output_dir, args.seed)
        recipe = Recipe(config)
        with contextlib.redirect_stdout(sys.stderr):  # trainers print their log lines: not into the result
            result = _run(recipe, args.stage, force)
    except TrainerError as exc:
        print(f"guardsdk-train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing data file or model folder named in the config
        print(f"guardsdk-train: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _forced(stage: str, values: list[str]) -> list[str]:
    """The stages ``--force`` names: ``STAGE CONFIG --force`` forces that stage, ``recipe CONFIG --force STAGE``
    (repeatable) forces STAGE and every stage after it."""
    bad = [v for v in values if v and v not in STAGES]
    if bad:
        raise TrainerError(f"--force {bad[0]}: not a stage; stages: {', '.join(STAGES)}")
    if stage in ("recipe", "smoke"):
        if "" in values:
            raise TrainerError(f"{stage} --force needs a STAGE to rerun with every stage after it: --force hsdpo")
        return values
    if any(v not in ("", stage) for v in values):
        raise TrainerError(f"{stage} --force reruns {stage} only; for another stage: `recipe CONFIG --force STAGE`")
    return [stage] if values else []


def _load(path: str, output_dir: str | None, seed: int | None) -> RecipeConfig:
    import yaml

    try:
        config = load_config(path)
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise TrainerError(f"config {path}: {' '.join(str(exc).split())}") from exc
    if output_dir:
        config.output_dir = output_dir
    if seed is not None:
        config.data.seed = config.rsft.seed = config.hsdpo.seed = seed
    return config


def _run(recipe: Recipe, stage: str, force: list[str]) -> dict[str, Any]:
    if stage == "recipe":
        return {k: v["metrics"] for k, v in recipe.run(force=force)["stages"].items()}
    if stage == "smoke":
        from guardsdk_trainer.smoke import smoke

        return smoke(recipe, force=force)
    if stage != "data":
        recipe.run_stage("data")  # skipped unless its config or files changed
        recipe.warn_stale(stage)
    return recipe.run_stage(stage, force=bool(force))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
