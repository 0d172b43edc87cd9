"""``Guard()`` without a model: configured model → local GuardReasoner weights → bundled classifier (or, for an
explicit GuardReasoner family, the bundled guardreasoner-tiny)."""

from __future__ import annotations

import logging
import shutil

import huggingface_hub.constants
import pytest

from guardsdk import Guard, ModelNotFoundError, OnUnsafe, Policy
from guardsdk.backends.hf import HFBackend
from guardsdk.detectors import resolve as model_resolution
from guardsdk.detectors.classifier.detector import ClassifierDetector, bundled_heads_path
from guardsdk.detectors.resolve import MODEL_ENV, MODELS_DIR_ENV, bundled_tiny_path, resolve_default_model


@pytest.fixture
def nothing_configured(monkeypatch, tmp_path):
    """No env configuration and an empty Hugging Face cache."""
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))


def test_an_explicitly_configured_gguf_wins(nothing_configured, monkeypatch, tiny_gguf, caplog):
    monkeypatch.setenv(MODEL_ENV, str(tiny_gguf))
    with caplog.at_level(logging.INFO, logger="guardsdk"), Guard() as guard:
        assert guard.backend.name == tiny_gguf.name
    assert f"using {tiny_gguf}" in caplog.text and "$GUARDSDK_MODEL" in caplog.text


def test_a_configured_model_that_is_missing_is_a_typed_error(nothing_configured, monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelNotFoundError, match=r"nope\.gguf"):
        Guard()
    monkeypatch.setenv(MODEL_ENV, "")
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "no-such-folder"))
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        Guard()


def test_the_smallest_guardreasoner_gguf_in_the_models_folder_is_chosen(nothing_configured, monkeypatch, tmp_path,
                                                                         tiny_gguf):  # fmt: skip
    for name in ("GuardReasoner-8B.Q4_K_M.gguf", "GuardReasoner-1B.Q4_K_M.gguf", "other-model.gguf"):
        shutil.copy(tiny_gguf, tmp_path / name)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    choice = resolve_default_model()
    assert (choice.kind, choice.location) == ("gguf", str(tmp_path / "GuardReasoner-1B.Q4_K_M.gguf"))


def test_guardreasoner_weights_in_the_hugging_face_cache_are_found_offline(nothing_configured, monkeypatch, tmp_path,
                                                                           tiny_hf_dir):  # fmt: skip
    repo = tmp_path / "hub" / "models--yueliu1999--GuardReasoner-3B"
    shutil.copytree(tiny_hf_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    choice = resolve_default_model()
    assert choice.kind == "hf" and choice.location.endswith("0123abcd") and "GuardReasoner-3B" in choice.why
    guard = Guard(max_new_tokens=8)
    assert isinstance(guard.backend, HFBackend)


def test_with_nothing_configured_or_found_the_bundled_classifier_runs_and_says_so(nothing_configured, caplog):
    choice = resolve_default_model()
    assert choice.kind == "classifier" and choice.bundled and choice.location == str(bundled_heads_path())
    with caplog.at_level(logging.WARNING, logger="guardsdk"), Guard() as guard:
        assert isinstance(guard.detector, ClassifierDetector)
        verdict = guard.with_policy(Policy(on_unsafe=OnUnsafe.ANNOTATE)).check("How do I bake sourdough bread?")
    assert verdict.family == "classifier" and verdict.scores["prompt_harm"] < 0.5
    assert "bundled classifier" in caplog.text and "no reasoning" in caplog.text and "GuardReasoner-1B" in caplog.text


def test_an_explicit_guardreasoner_family_falls_back_to_the_bundled_tiny_model(nothing_configured, caplog):
    assert bundled_tiny_path().is_file() and bundled_tiny_path().stat().st_size <= 40 * 2**20
    with caplog.at_level(logging.WARNING, logger="guardsdk"), Guard(family="guardreasoner") as guard:
        assert guard.backend.name == bundled_tiny_path().name
    assert "bundled guardreasoner-tiny" in caplog.text and "GuardReasoner-1B" in caplog.text


def test_without_the_classifier_installed_the_default_is_the_bundled_tiny_model(nothing_configured, monkeypatch):
    monkeypatch.setattr(model_resolution, "classifier_available", lambda: False)
    choice = resolve_default_model()
    assert (choice.kind, choice.location) == ("gguf", str(bundled_tiny_path()))
