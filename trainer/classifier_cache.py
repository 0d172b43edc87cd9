"""The ``classifier`` stage's embedding cache: each distinct text encoded once, read as the detector reads it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from guardsdk.detectors.classifier.encoder import SentenceEncoder
from guardsdk.detectors.classifier.pieces import Piece, further_pieces, text_pieces
from guardsdk.detectors.classifier.reading import unreadable
from guardsdk_trainer.config import ClassifierConfig

logger = logging.getLogger("guardsdk_trainer")


class EmbeddingCache:
    """Each distinct text encoded once (the refusal and response heads read the same responses). Asked for
    ``parts``, a text is read as the detector reads a pooled role (:func:`text_pieces`): its embedding is its
    first window's, and its parts are all else the detector scores of it — its other windows, its sentences
    pooled in their window, any sentence encoded alone."""

    def __init__(self, encoder: SentenceEncoder, batch_size: int) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.rows: dict[str, torch.Tensor] = {}
        self.parts: dict[str, torch.Tensor] = {}
        self.further: dict[tuple[str, bool], torch.Tensor] = {}

    def encode(self, texts: Sequence[str], parts: bool = False) -> torch.Tensor:
        new = list(dict.fromkeys(t for t in texts if t not in (self.parts if parts else self.rows)))
        if new:
            read = [text_pieces(self.encoder.codec(t), pooled=True) if parts else (Piece(t),) for t in new]
            flat = [piece for pieces in read for piece in pieces]
            wholes, spans = self.encoder.encode_spans([p.text for p in flat], [p.spans for p in flat],
                                                      batch_size=self.batch_size)  # fmt: skip
            start = 0
            for text, pieces in zip(new, read, strict=True):
                end = start + len(pieces)
                self.rows[text] = wholes[start]
                if parts:
                    self.parts[text] = torch.cat([wholes[start + 1 : end], *spans[start:end]])
                start = end
        return torch.stack([self.rows[t] for t in texts])

    def pooled_parts(self, texts: Sequence[str]) -> torch.Tensor:
        """The parts of ``texts`` (encoded before with ``parts``), stacked."""
        return torch.cat([torch.empty(0, self.encoder.dimension), *(self.parts[t] for t in texts)])

    def further_parts(self, texts: Sequence[str], clauses: bool) -> torch.Tensor:
        """What else the detector reads of each of ``texts`` (:func:`further_pieces`, pooled; nothing of a text it
        cannot read), every piece's whole and pooled embeddings, stacked."""
        new = [t for t in dict.fromkeys(texts) if (t, clauses) not in self.further]
        read = [() if unreadable(t) else further_pieces(self.encoder.codec(t), self.encoder.codec, True, clauses)
                for t in new]  # fmt: skip
        flat = [piece for pieces in read for piece in pieces]
        logger.info("classifier: %d further pieces of %d texts", len(flat), len(new))
        wholes, spans = self.encoder.encode_spans([p.text for p in flat], [p.spans for p in flat],
                                                  batch_size=self.batch_size)  # fmt: skip
        start = 0
        for text, pieces in zip(new, read, strict=True):
            end = start + len(pieces)
            self.further[text, clauses] = torch.cat([wholes[start:end], *spans[start:end]])
            start = end
        return torch.cat([torch.empty(0, self.encoder.dimension), *(self.further[t, clauses] for t in texts)])


def stage_cache(cfg: ClassifierConfig, encoder: SentenceEncoder | None = None) -> EmbeddingCache:
    """The stage's embedding cache: ``encoder``, by default MiniLM in float32 (the heads' embeddings, exact), with
    ``cfg``'s threads and batch size."""
    return EmbeddingCache(encoder or SentenceEncoder(threads=cfg.threads, precision="fp32"), cfg.encode_batch_size)


__all__ = ["EmbeddingCache", "stage_cache"]
