"""The ``classifier`` stage's multilingual prompt head (``multilingual: true``): the same rows and fit as the MiniLM
prompt head, read through USE multilingual v3 as the detector reads a prompt in another language
(:mod:`guardsdk.detectors.classifier.multilingual`): each text whole; a safe text's sentences and windows alone, and
its readings and clauses (``reading_negatives``), learnt as safe, as the MiniLM heads learn theirs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from guardsdk.detectors.classifier.heads import TaskHead
from guardsdk.detectors.classifier.multilingual import (
    DIMENSION,
    ENCODER_NAME,
    ENCODER_PACKAGE,
    LANGUAGES,
    MAX_WINDOWS,
    MultilingualEncoder,
    parts,
    versions,
    windows,
)
from guardsdk.detectors.classifier.reading import visible
from guardsdk_trainer.config import ClassifierConfig


class MultilingualCache:
    """Each distinct text's USE embeddings, computed once: the text (invisible characters removed, as the detector
    reads it), its sentences alone, its readings and clauses. The :class:`~guardsdk_trainer.classifier_cache.
    EmbeddingCache` interface, so the stage's ``fit_task_head`` fits these heads too."""

    def __init__(self, encoder: MultilingualEncoder) -> None:
        self.encoder = encoder
        self.rows: dict[str, torch.Tensor] = {}
        self.parts: dict[str, torch.Tensor] = {}
        self.further: dict[tuple[str, bool], torch.Tensor] = {}

    def _stacked(self, store: dict, keys: Sequence, texts_of: Any) -> torch.Tensor:
        new = [k for k in dict.fromkeys(keys) if k not in store]
        pieces = [texts_of(k) for k in new]
        flat = self.encoder.encode([t for texts in pieces for t in texts]) if new else torch.empty(0, 0)
        start = 0
        for key, texts in zip(new, pieces, strict=True):
            store[key] = flat[start : start + len(texts)]
            start += len(texts)
        return torch.cat([torch.empty(0, self.encoder.dimension), *(store[k] for k in keys)])

    def encode(self, texts: Sequence[str], parts: bool = False) -> torch.Tensor:
        if parts:
            self.pooled_parts(texts)
        return self._stacked(self.rows, texts, lambda t: [visible(t)])

    def pooled_parts(self, texts: Sequence[str]) -> torch.Tensor:
        """Each text's sentences and windows, alone (none of a text too long for the detector to read this way)."""
        return self._stacked(self.parts, texts, _own_parts)

    def further_parts(self, texts: Sequence[str], clauses: bool) -> torch.Tensor:
        """Each text's readings, whole and in parts, and (``clauses``) its own clause pieces."""
        return self._stacked(self.further, [(t, clauses) for t in texts], _further)


def _readable_length(text: str) -> bool:
    """Whether the detector would read ``text`` with this head at all (at most ``MAX_WINDOWS`` windows)."""
    return len(windows(visible(text))) <= MAX_WINDOWS


def _own_parts(text: str) -> list[str]:
    return parts(visible(text), clauses=False) if _readable_length(text) else []


def _further(key: tuple[str, bool]) -> list[str]:
    text, clauses = key
    if not _readable_length(text):
        return []
    shown, *others = versions(text)
    own = [t for t in parts(shown, clauses) if t not in parts(shown, False)]
    return [*own, *(t for version in others for t in (version, *parts(version, clauses)))]


def multilingual_cache(cfg: ClassifierConfig) -> MultilingualCache:
    """The stage's multilingual cache: USE with ``cfg``'s threads (default: all cores) and batch size."""
    return MultilingualCache(MultilingualEncoder(threads=cfg.threads or os.cpu_count() or 1,
                                                 batch_size=cfg.encode_batch_size))  # fmt: skip


def multilingual_info(heads: dict[str, TaskHead], cfg: ClassifierConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """What :class:`~guardsdk.detectors.classifier.heads.HeadsConfig` records of the multilingual heads."""
    return {"encoder": ENCODER_NAME, "encoder_package": ENCODER_PACKAGE, "dimension": DIMENSION,
            "languages": sorted(LANGUAGES), "tasks": sorted(heads),
            "prompt_threshold": cfg.multilingual_prompt_threshold, "training": metrics}  # fmt: skip


__all__ = ["MultilingualCache", "multilingual_cache", "multilingual_info"]
