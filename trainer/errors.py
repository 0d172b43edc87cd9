"""Errors a user can fix in their config: ``guardsdk-train`` prints them as one line and exits 2."""

from __future__ import annotations

from collections.abc import Sequence


class TrainerError(Exception):
    """A problem with the user's config, data or run order (not a bug): shown as one line, exit code 2."""


class StageOrderError(TrainerError, ValueError):
    """A stage was asked for before the stage whose output it reads."""


class StageFailed(TrainerError):
    """A stage could not produce its output; ``keys`` are the config keys that would fix it."""

    def __init__(self, stage: str, what: str, keys: Sequence[str]) -> None:
        self.stage = stage
        self.what = what
        self.keys = list(keys)
        super().__init__(f"stage {stage} failed: {what}; raise or change {', '.join(self.keys)} in the config")


__all__ = ["StageFailed", "StageOrderError", "TrainerError"]
