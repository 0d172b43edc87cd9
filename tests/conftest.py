"""Shared fixtures: the shared data folder, a replay backend, and tiny real models built offline."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PREDICTIONS = SHARED / "predictions"
BENCHMARKS = SHARED / "benchmarks"

#: Which task each published prediction folder measures.
PREDICTION_TASKS = {
    "AegisSafetyTest": "prompt_harm",
    "HarmBenchPrompt": "prompt_harm",
    "SimpleSafetyTests": "prompt_harm",
    "HarmBenchResponse": "response_harm",
    "XSTestReponseHarmful": "response_harm",
    "XSTestResponseRefusal": "refusal",
}


def prediction_files() -> list[Path]:
    files = sorted(PREDICTIONS.glob("*/*/generated_predictions.jsonl"))
    assert len(files) == 12, f"expected the 12 shared prediction files under {PREDICTIONS}"
    return files


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(autouse=True)
def _no_stray_root_handlers():
    """A command a test runs (the trainer's CLI sets up its own root handler; ``guardsdk serve`` calls
    ``logging.basicConfig``) must not leave a root handler writing to that test's captured stream: once pytest closes
    it, every later log line prints "--- Logging error ---" into another test's stderr (a one-line-error test failed
    on it). Before and after each test, such handlers go: the ones on a closed stream, and the ones the test added."""

    def plain(handler: logging.Handler) -> bool:  # not pytest's own capturing handlers (subclasses)
        return type(handler) in (logging.StreamHandler, logging.FileHandler)

    root = logging.getLogger()
    for handler in list(root.handlers):
        if plain(handler) and getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if plain(handler) and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def replay_backend():
    from guardsdk.backends.replay import ReplayBackend

    return ReplayBackend.from_predictions(
        sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")), name="GuardReasoner-8B (replay)"
    )


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> Path:
    from guardsdk.tools.tiny_model import build_tiny_llama

    # Seed 2: on this fixed input set no greedy step is a near-tie (logit gap < 0.01) that the F16
    # GGUF's float16 activations could flip, so HF and llama.cpp (F32 and F16) agree exactly.
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "hf", seed=2)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_hf_dir, tmp_path_factory) -> Path:
    from guardsdk.tools.gguf_export import convert_hf_to_gguf

    return convert_hf_to_gguf(tiny_hf_dir, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf", "f32")


@pytest.fixture(scope="session")
def tiny_gguf_f16(tiny_hf_dir, tmp_path_factory) -> Path:
    from guardsdk.tools.gguf_export import convert_hf_to_gguf

    return convert_hf_to_gguf(tiny_hf_dir, tmp_path_factory.mktemp("gguf16") / "tiny-f16.gguf", "f16")


@pytest.fixture(scope="session")
def llama_backend(tiny_gguf):
    from guardsdk.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(tiny_gguf, n_ctx=4096)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def hf_backend(tiny_hf_dir):
    from guardsdk.backends.hf import HFBackend

    return HFBackend.from_pretrained(tiny_hf_dir)


@pytest.fixture(scope="session")
def bundled_plain():
    """The bundled guardreasoner-tiny (trained: it writes labels) on llama.cpp, one token per step: runs of the
    same input compare exactly (on a llama.cpp build with llamafile's kernels, drafted batches move logits;
    tests/test_drafting.py checks the installed build does not)."""
    from guardsdk.backends.llamacpp import LlamaCppBackend
    from guardsdk.detectors.resolve import bundled_tiny_path

    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting=False)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def classifier():
    """The bundled classifier detector (loaded once; test files may define their own ``classifier``)."""
    from guardsdk.detectors.classifier.detector import ClassifierDetector

    return ClassifierDetector.from_pretrained()


@pytest.fixture(scope="session")
def annotate(classifier):
    """A guard on the bundled classifier that annotates (returns every verdict)."""
    from guardsdk import Guard, OnUnsafe, Policy

    return Guard(classifier, policy=Policy(on_unsafe=OnUnsafe.ANNOTATE))
