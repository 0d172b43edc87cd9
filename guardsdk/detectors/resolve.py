"""From what a user names to a detector: a detector as is, a backend, a model file or folder, or the default."""

from __future__ import annotations

import os

from guardsdk.backends.base import Backend
from guardsdk.detectors.base import Detector
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.families import GuardFamily, get_family
from guardsdk.model_resolution import explicit, load_backend, log_choice, resolve_default_model

Model = Detector | Backend | str | os.PathLike[str] | None


def as_detector(
    model: Model, family: str | GuardFamily | None = None, *, max_input_tokens: int = 2048,
    max_new_tokens: int | None = None, threads: int | None = None, needed_tasks_only: bool = False,
) -> Detector:  # fmt: skip
    """``model`` as a detector: a detector as is; a backend, a GGUF file or a Hugging Face folder / hub id
    (None: the default model) as ``family``'s generative detector, its budget checked against the context
    (``needed_tasks_only``: see :class:`GenerativeDetector`); with ``family="classifier"``, a folder of
    classifier heads (None: the bundled ones)."""
    if isinstance(model, Detector):
        return model
    if family == CLASSIFIER:
        return _classifier(model, threads, max_input_tokens)  # type: ignore[arg-type]
    guard_family = None if family is None else get_family(family)
    if isinstance(model, Backend):
        backend = model
    else:
        choice = explicit(model, "given") if model is not None else resolve_default_model(guard_family)
        log_choice(choice)
        if choice.kind == "classifier":
            return _classifier(choice.location, threads, max_input_tokens)
        backend = load_backend(choice, threads)
    guard_family = guard_family or get_family(None)
    detector = GenerativeDetector(backend, guard_family, max_input_tokens=max_input_tokens,
                                  max_new_tokens=max_new_tokens, needed_tasks_only=needed_tasks_only)  # fmt: skip
    if max_input_tokens + detector.max_new_tokens > backend.context_length:
        raise ValueError(
            f"max_input_tokens + max_new_tokens = {max_input_tokens + detector.max_new_tokens} exceeds "
            f"the backend's context length {backend.context_length}"
        )
    return detector


def _classifier(heads: str | os.PathLike[str] | None, threads: int | None, max_input_tokens: int) -> Detector:
    from guardsdk.detectors.classifier.detector import ClassifierDetector  # torch is loaded only here

    return ClassifierDetector.from_pretrained(heads, threads=threads, max_input_tokens=max_input_tokens)


__all__ = ["Model", "as_detector"]
