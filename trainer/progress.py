"""What a person watching a run sees: one log line per event, and progress bars named by their stage, with ETA."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tqdm.auto import tqdm
from transformers.trainer_callback import ProgressCallback

#: The stage running now (set by the recipe): the name on every progress bar.
STAGE: ContextVar[str] = ContextVar("guardsdk_trainer_stage", default="train")
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """One stderr handler on the root logger and none on ``guardsdk_trainer`` itself, so each event prints
    once: a handler there as well as on the root (from an earlier ``basicConfig`` or a library) doubled lines."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    own = logging.getLogger("guardsdk_trainer")
    for extra in list(own.handlers):
        own.removeHandler(extra)
    own.propagate = True


def quiet_library_bars() -> None:
    """Turn off the bars that libraries open without a stage name (datasets' map passes, transformers'
    weight loading and saving), so the bars left on screen are the stage-named ones, and a library warning
    about another library's use of a deprecated name."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    # trl 1.16 reads transformers 5's deprecated `is_gradient_checkpointing` itself: not the user's to fix.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the progress bars opened inside after ``name``."""
    token = STAGE.set(name)
    try:
        yield
    finally:
        STAGE.reset(token)


def bar(total: int, what: str, unit: str = "it") -> Any:
    """A tqdm bar on stderr titled ``[stage] what``; tqdm shows the elapsed time and the ETA."""
    return tqdm(total=total, desc=f"[{STAGE.get()}] {what}", unit=unit, file=sys.stderr, dynamic_ncols=True)


class StageProgressCallback(ProgressCallback):
    """transformers' training bar, titled with the stage and the model it trains."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Opened with its title (transformers' own opens untitled first, which left an unnamed `0/N` bar).
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc=f"[{STAGE.get()}] training {self.what}",
                                     file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        self.current_step = 0


def name_training_bar(trainer: Any, what: str) -> None:
    """Swap ``trainer``'s progress bar for a :class:`StageProgressCallback`."""
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(StageProgressCallback(what))
