"""``build_detector``: the detector stack a guard runs, from its model(s), family and mode."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from guardsdk.detectors.base import Detector
from guardsdk.detectors.cascade import DEFAULT_BAND, Cascade
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.detectors.ensemble import Ensemble
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.detectors.resolve import Model, as_detector
from guardsdk.detectors.verdict_first import DEFAULT_REASON_WHEN, VerdictFirst
from guardsdk.families import DEFAULT_FAMILY, GuardFamily


class Mode(str, enum.Enum):
    """How a guard runs its model (see :class:`~guardsdk.Guard`)."""

    SINGLE = "single"  # each model checks every input (several: an ensemble)
    CASCADE = "cascade"  # the bundled classifier first, the model where the classifier is unsure
    VERDICT_FIRST = "verdict_first"  # answers read in one pass, reasoning only where it would block (lossy)
    NEEDED_TASKS = "needed_tasks"  # reasoning only about the tasks the policy needs (lossy)

    __str__ = str.__str__


#: The mode names, in order.
MODES = tuple(mode.value for mode in Mode)


def build_detector(
    model: Model | Sequence[Model] = None,
    family: str | GuardFamily | None = None,
    mode: Mode | str = Mode.SINGLE,
    *,
    max_input_tokens: int = 2048,
    max_new_tokens: int | None = None,
    threads: int | None = None,
    cascade_band: tuple[float, float] = DEFAULT_BAND,
    confirm_unsafe: bool = False,
    reason_when: Iterable[str] = DEFAULT_REASON_WHEN,
) -> Detector:
    """The detector of ``model`` (or of each model in a list: an ensemble) under ``mode``; see :class:`~guardsdk.Guard`
    for the arguments. A mode other than ``single`` runs a reasoning guard: the classifier is refused as its family."""
    try:
        mode = Mode(mode)
    except ValueError:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}") from None
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if mode is not Mode.SINGLE and family == CLASSIFIER:
        raise ValueError(f"mode={mode.value!r} needs a reasoning guard: give that guard's family, not the classifier")
    if mode is not Mode.SINGLE and family is None:
        family = DEFAULT_FAMILY  # the mode runs a reasoning guard: never the classifier default
    detectors = [as_detector(m, family, max_input_tokens=max_input_tokens, max_new_tokens=max_new_tokens,
                             threads=threads, needed_tasks_only=mode is Mode.NEEDED_TASKS)
                 for m in models]  # fmt: skip
    if mode in (Mode.VERDICT_FIRST, Mode.NEEDED_TASKS) and not all(
        isinstance(d, GenerativeDetector) for d in detectors
    ):
        raise ValueError(f"mode={mode.value!r} runs a guard family's model: give a model, not a detector")
    if mode is Mode.VERDICT_FIRST:
        detectors = [VerdictFirst(d, reason_when=reason_when) for d in detectors]  # type: ignore[arg-type]
    detector: Detector = detectors[0] if len(detectors) == 1 else Ensemble(detectors)
    if mode is Mode.CASCADE:
        fast = as_detector(None, CLASSIFIER, max_input_tokens=max_input_tokens)
        detector = Cascade(fast, detector, band=cascade_band, confirm_unsafe=confirm_unsafe)
    return detector


__all__ = ["MODES", "Mode", "build_detector"]
