"""What the classifier's encoder reads of one text: the text (or its windows) and its sentences, as pieces.

A piece is one encoder pass; the character ranges it carries are sentences pooled from that same pass (read in
context, no second encoding). The training stage reads texts through :func:`text_pieces` too, so a head learns
exactly the parts the detector scores.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from guardsdk.detectors.classifier.encoder import MAX_TOKENS, TextSpans
from guardsdk.detectors.classifier.reading import clause_pieces, readings, sentence_bounds
from guardsdk.detectors.long_input import token_windows, window_ranges

#: A window's tokens: room for [CLS] and [SEP], and slack for a cut edge that tokenizes differently alone
#: (encoding is strict: a window over the encoder's limit makes the check undecided, never cut unseen).
WINDOW_TOKENS = MAX_TOKENS - 2 - 8


def sentences(codec: TextSpans, size: int, bounds: list[tuple[int, int]] | None = None) -> list[str]:
    """The sentences of ``codec.text`` (``bounds``, default :func:`sentence_bounds`) as slices of the text, one
    longer than ``size`` tokens in windows."""
    text = codec.text
    starts = [span[0] for span in codec.tokens]
    parts = []
    for a, b in sentence_bounds(text) if bounds is None else bounds:
        tokens = [span for span in codec.tokens[bisect_left(starts, a) : bisect_left(starts, b)] if span[1] <= b]
        parts += token_windows(tokens, size, codec) if len(tokens) > size else [text[a:b]]
    return parts


@dataclass(frozen=True)
class Piece:
    """One text the encoder reads, and the character ranges of it pooled from that same pass."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()
    alone: bool = False  # a sentence encoded on its own (``whole_text_tasks`` never read one)


def text_pieces(codec: TextSpans, pooled: bool) -> tuple[Piece, ...]:
    """What the encoder reads of one text: the text, or a text over one window in windows (slices of its own
    characters); and its sentences, with ``pooled`` each pooled from the first window that holds the whole
    sentence (read in context, no second pass), else — and where no window holds one — each encoded alone."""
    bounds = sentence_bounds(codec.text)
    tokens = codec.tokens
    if len(tokens) <= WINDOW_TOKENS:
        ranges = [(0, len(codec.text))]
    else:
        ranges = [(tokens[a][0], tokens[b - 1][1]) for a, b in window_ranges(len(tokens), WINDOW_TOKENS)]
    pieces, placed = [], set()
    for lo, hi in ranges:
        inside = [(a, b) for a, b in bounds if pooled and lo <= a and b <= hi and (a, b) not in placed]
        placed.update(inside)
        pieces.append(Piece(codec.text[lo:hi], tuple((a - lo, b - lo) for a, b in inside)))
    alone = sentences(codec, WINDOW_TOKENS, [bound for bound in bounds if bound not in placed])
    return (*pieces, *(Piece(text, alone=True) for text in alone))


def further_pieces(codec: TextSpans, codec_of: Callable[[str], TextSpans], pooled: bool, clauses: bool
                   ) -> tuple[Piece, ...]:  # fmt: skip
    """What else the detector reads of a text it can read (``read_rewrites``): the :func:`text_pieces` of each of its
    other readings (:func:`~guardsdk.detectors.classifier.reading.readings`) and, with ``clauses``, its clause pieces,
    each encoded alone (in windows where one is over one: pooled in context a clause is diluted as the whole text is).
    ``codec_of`` tokenizes a text."""
    extra = [piece for text in readings(codec.text) for piece in text_pieces(codec_of(text), pooled)]
    long = len(codec.tokens) > WINDOW_TOKENS
    parts = clause_pieces(codec.text, every_sentence=long) if clauses else []
    alone = [part for text in parts for part in sentences(codec_of(text), WINDOW_TOKENS, [(0, len(text))])]
    return (*extra, *(Piece(text, alone=True) for text in alone))


__all__ = ["WINDOW_TOKENS", "Piece", "further_pieces", "sentences", "text_pieces"]
