"""The classifier detector: MiniLM sentence embeddings and one calibrated head per task, in milliseconds.

No reasoning is run: a verdict carries each task's probability (``verdict.scores``) and its ``raw`` text says so.
Every token is read: a text longer than the encoder's window is scored in windows, or is undecided under
``long_input="undecided"`` or beyond ``max_windows``; under ``long_input="elide"`` only the middle beyond
``max_input_tokens`` is cut unseen. A text of several sentences is also scored sentence by sentence (a mean-pooled
embedding dilutes one harmful request among benign sentences), each pooled from the text's own encoding where the
heads say so (``pooled_sentences``: read in context, no second pass). A task's score is the highest of all its
parts, as any unsafe window wins for the reasoning guard; a score that is not a finite number decides nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from guardsdk.backends.base import files_fingerprint
from guardsdk.deadline import DeadlineExceeded
from guardsdk.detectors.classifier import bundled_heads_path
from guardsdk.detectors.classifier.encoder import SentenceEncoder, TextSpans
from guardsdk.detectors.classifier.heads import (
    CONFIG_FILE,
    HEADS_FILE,
    MULTILINGUAL_FILE,
    PAIR,
    HeadsConfig,
    TaskHead,
    load_heads,
    load_multilingual_heads,
    roles_read,
)
from guardsdk.detectors.classifier.multilingual import (
    ENCODER_NAME,
    MultilingualEncoder,
    MultilingualReader,
    foreign_pieces,
    uncertain,
)
from guardsdk.detectors.classifier.pieces import WINDOW_TOKENS, Piece, further_pieces, sentences, text_pieces
from guardsdk.detectors.classifier.reading import sentence_bounds, unreadable
from guardsdk.detectors.long_input import MAX_BYTES_PER_TOKEN, count_windows, precut, too_long_reason
from guardsdk.detectors.truncation import ELISION_MARKER, cut_middle, marker_cost, split_budget
from guardsdk.errors import describe
from guardsdk.policy import LongInput, Policy
from guardsdk.verdict import PROMPT_HARM, Failure, Label, Task, Verdict, verdict_from_labels

FAMILY = "classifier"
Pair = tuple[str, "str | None"]


def _highest(scores: list[float]) -> float:
    """The highest score of a task's parts; NaN when there is none or any part has no finite score (a part
    that was not scored is never outvoted by the others)."""
    if not scores or not all(math.isfinite(score) for score in scores):
        return math.nan
    return max(scores)


@dataclass(frozen=True)
class _Texts:
    """What one input's heads read: the windows and sentences of its prompt and of its response, or why it
    cannot be scored."""

    prompt: tuple[Piece, ...] = ()
    response: tuple[Piece, ...] = ()
    windows: int = 1
    long: bool = False
    elided: bool = False
    tokens: int = 0
    error: str | None = None
    unreadable: tuple[tuple[str, str], ...] = ()  # (role, why) for a text the encoder cannot read
    foreign: tuple[Piece, ...] = ()  # the prompt's pieces for the multilingual heads, where they read it, not MiniLM
    lifted: str = ""  # why MiniLM could not read that prompt (``language de``); "": both read it (language uncertain)


class ClassifierDetector:
    """A :class:`~guardsdk.detectors.generative.Detector` that scores each task with a calibrated head (no reasoning).

    ``ClassifierDetector.from_pretrained()`` loads the bundled heads on the pinned MiniLM encoder;
    ``threads`` sets torch's threads while encoding (default: torch's own; see :class:`SentenceEncoder`);
    ``max_input_tokens`` is what ``long_input="elide"`` keeps of an input (in the encoder's tokens);
    ``read_rewrites`` (default True) also scores each text as an LLM reads it and leaves a text in a language the
    encoder cannot read undecided (:mod:`~guardsdk.detectors.classifier.reading`).
    """

    def __init__(
        self, heads: dict[str, TaskHead], config: HeadsConfig, encoder: SentenceEncoder, name: str,
        max_input_tokens: int = 2048,
    ) -> None:  # fmt: skip
        if max_input_tokens < WINDOW_TOKENS:
            raise ValueError(f"max_input_tokens must be at least one window ({WINDOW_TOKENS}), not {max_input_tokens}")
        self.heads = heads
        self.threshold = config.threshold
        self.inputs = config.inputs  # per task, what its head reads: "prompt" or "response"
        self.pooled_sentences = frozenset(config.pooled_sentences)  # roles whose sentences are pooled in context
        self.whole_text_tasks = frozenset(config.whole_text_tasks)  # tasks that never read a lone sentence
        self.clause_roles = frozenset(config.clause_roles)  # roles whose clauses are also read alone
        self.encoder = encoder
        self.name = f"{FAMILY}:{name}"
        self.model = name  # the classifier (its heads' folder), not the encoder it reads through
        self.family_name = FAMILY
        self.tasks = tuple(Task(t) for t in heads)
        self.max_input_tokens = max_input_tokens
        self._closed = False
        self.fingerprint: str | None = None  # of the heads' files, when loaded from a folder
        self.read_rewrites = True
        self.multilingual: MultilingualReader | None = None  # reads the languages it covers, where MiniLM cannot

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        precision: str = "auto",
        max_input_tokens: int = 2048,
    ) -> ClassifierDetector:
        """Heads from ``path`` (a folder written by the ``classifier`` training stage; default: the bundled
        heads) on the encoder they were trained with (``precision``: see :class:`SentenceEncoder`)."""
        folder = Path(path) if path is not None else bundled_heads_path()
        heads, config = load_heads(folder)
        encoder = SentenceEncoder(threads=threads, precision=precision)
        detector = cls(heads, config, encoder, folder.name, max_input_tokens=max_input_tokens)
        files = [folder / HEADS_FILE, folder / CONFIG_FILE]
        if (foreign := load_multilingual_heads(folder, config)) and PAIR not in config.inputs.values():
            threshold = config.multilingual.get("prompt_threshold", 0.5)
            detector.multilingual = MultilingualReader(foreign, MultilingualEncoder(threads=threads or 1), threshold)
            files.append(folder / MULTILINGUAL_FILE)
        detector.fingerprint = files_fingerprint(files)
        return detector

    # -- the pure steps ----------------------------------------------------------------------
    def _texts(self, prompt: str, response: str | None, policy: Policy) -> _Texts:
        elide = policy.long_input is LongInput.ELIDE
        if elide:  # a huge text is cut by characters first, so it is never tokenized whole
            prompt, response = precut(prompt, self.max_input_tokens), precut(response, self.max_input_tokens)
        n_bytes = len(prompt.encode()) + len((response or "").encode())
        if not elide and n_bytes // MAX_BYTES_PER_TOKEN > WINDOW_TOKENS * policy.max_windows:
            return _Texts(long=True, error=too_long_reason(policy, f"over {n_bytes // MAX_BYTES_PER_TOKEN}"))
        codecs = {role: self.encoder.codec(text) for role, text in (("prompt", prompt), ("response", response))
                  if text is not None}  # fmt: skip
        total = sum(len(codec.tokens) for codec in codecs.values())
        long = any(len(codec.tokens) > WINDOW_TOKENS for codec in codecs.values())
        if long and policy.long_input is LongInput.UNDECIDED:
            return _Texts(long=True, tokens=total, error=too_long_reason(policy, str(total)))
        elided = elide and total > self.max_input_tokens
        if elided:
            codecs = self._elided(codecs)
        count = sum(count_windows(len(c.tokens), WINDOW_TOKENS) for c in codecs.values())
        if count > policy.max_windows and not elide:  # counted before any text is cut: a flood costs one tokenization
            return _Texts(long=True, tokens=total, error=too_long_reason(policy, str(total), count))
        unread = tuple((role, why) for role, c in codecs.items() if self.read_rewrites and (why := unreadable(c.text)))
        windows = count if long else 1  # a prompt and a response that each fit are one check, as for a model
        why = dict(unread).get("prompt")  # a prompt MiniLM cannot read, in languages the multilingual heads read
        lifted = why if why and self.multilingual and self.multilingual.reads(why, codecs["prompt"].text) else None
        also = self.read_rewrites and not why and self.multilingual and uncertain(codecs["prompt"].text)  # 2nd reader
        foreign = foreign_pieces(codecs["prompt"].text, "prompt" in self.clause_roles) if lifted or also else ()
        unread = tuple((role, why) for role, why in unread if not (lifted and role == "prompt"))
        # a text that cannot be read gets no label: its other readings would be encoded for nothing
        scored = {role: () if lifted and role == "prompt" else
                  self._pieces(codec, role in self.pooled_sentences, extra=role not in dict(unread), role=role)
                  for role, codec in codecs.items()}  # fmt: skip
        return _Texts(scored.get("prompt", ()), scored.get("response", ()), windows, long, elided, total, None, unread,
                      foreign, (lifted or "").removeprefix("unreadable: "))  # fmt: skip

    def _pieces(self, codec: TextSpans, pooled: bool, extra: bool = True, role: str = "prompt") -> tuple[Piece, ...]:
        """A text's pieces (:func:`text_pieces`), and with ``read_rewrites`` (and ``extra``) its
        :func:`further_pieces`: its other readings and, for a role in ``clause_roles``, its clauses."""
        if not (self.read_rewrites and extra):
            return text_pieces(codec, pooled)
        further = further_pieces(codec, self.encoder.codec, pooled, clauses=role in self.clause_roles)
        return (*text_pieces(codec, pooled), *further)

    def _elided(self, codecs: dict[str, TextSpans]) -> dict[str, TextSpans]:
        """The texts cut in the middle to share ``max_input_tokens`` (half each, the shorter one's spare to the
        other), as a reasoning guard's input is cut under ``long_input="elide"``."""
        lengths = {role: len(codec.tokens) for role, codec in codecs.items()}
        prompt_keep, response_keep = split_budget(lengths["prompt"], lengths.get("response"), self.max_input_tokens)
        keeps = {"prompt": prompt_keep, "response": response_keep}
        cost = marker_cost(self.encoder.codec(ELISION_MARKER.format(n=10**6)))  # the marker's own tokens
        return {role: codec if lengths[role] <= keeps[role] else
                self.encoder.codec(cut_middle(codec.text, codec.tokens, keeps[role] - cost, codec))
                for role, codec in codecs.items()}  # fmt: skip

    def _verdict(self, has_response: bool, scores: dict[str, float], unread: dict[str, str], lifted: str = "",
                 foreign: bool = False) -> Verdict:  # fmt: skip
        blind = {t for t in scores if any(role in unread for role in roles_read(self.inputs[t]))}  # text it can't read
        labels: dict[Task, Label | None] = {}
        for task, score in scores.items():
            if math.isfinite(score) and task not in blind:
                labels[Task(task)] = Task(task).positive if score >= self.threshold else Task(task).negative
        shown = ", ".join(f"{t}={s:.3f}" for t, s in scores.items() if t not in blind)  # no score of unread text
        how = f"; the prompt read by {ENCODER_NAME}: {lifted}" if lifted else ""
        how += f"; the prompt also read by {ENCODER_NAME}: its language uncertain" if foreign and not lifted else ""
        raw = f"no reasoning was run: {self.name} scored {shown} (a label at p >= {self.threshold:g}{how})"
        verdict = verdict_from_labels(labels, has_response=has_response, raw=raw, family=FAMILY, answered=self.tasks)
        bad = [t for t, s in scores.items() if not math.isfinite(s)]
        roles = dict.fromkeys(role for t in blind for role in roles_read(self.inputs[t]) if role in unread)
        why = [f"{unread[r]}{'' if r == 'prompt' else f' ({r})'}" for r in roles] + (
            [f"non-finite score for {', '.join(bad)}"] if bad else []
        )
        kept = {t: s for t, s in scores.items() if math.isfinite(s) and t not in blind}
        return dataclasses.replace(verdict, scores=kept, error="; ".join(why) or None)

    # -- the drivers -------------------------------------------------------------------------
    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        started = time.monotonic()
        planned = []
        for prompt, response in pairs:
            try:
                planned.append(self._texts(prompt, response, policy))
            except Exception as exc:
                planned.append(_Texts(error=describe(exc)))
        error, failure = ("the classifier is closed", Failure.BACKEND) if self._closed else (None, None)
        probabilities: dict[str, list[list[float]]] = {}
        flat: list[Piece] = []
        foreign: list[Piece] = []  # prompts the multilingual heads read
        read: list[float] = []  # their prompt_harm scores
        contexts: list[int] = []  # per piece, its input's prompt's first piece: what a pair head reads beside it
        for texts in (p for p in planned if p.error is None):
            contexts += [len(flat)] * (len(texts.prompt) + len(texts.response))
            flat += [*texts.prompt, *texts.response]
            foreign += texts.foreign
        if error is None and (flat or foreign):
            try:
                probabilities = self._score(flat, contexts, deadline) if flat else {}
                if foreign and self.multilingual is not None:
                    read = self.multilingual.score(foreign, deadline)
            except DeadlineExceeded:  # stopped between encoder batches: a request's deadline ends its work too
                error, failure = "check ran past its deadline", Failure.DEADLINE
            except Exception as exc:
                error, failure = describe(exc), Failure.BACKEND
        if error is None and time.monotonic() > deadline:
            error, failure = "check ran past its deadline", Failure.DEADLINE
        latency = (time.monotonic() - started) / max(len(pairs), 1)
        verdicts, position, at = [], 0, 0
        moved = self.multilingual.moved if self.multilingual else None
        for (_, response), texts in zip(pairs, planned, strict=True):
            has_response = response is not None
            run = {"model": self.model, "detector": self.name, "family": FAMILY, "latency_s": latency,
                   "long_input": texts.long, "input_truncated": texts.elided, "tokens_in": texts.tokens}  # fmt: skip
            if texts.error is not None or error is not None:
                verdicts.append(Verdict.undecided(has_response=has_response, error=texts.error or error,
                                                  failure=None if texts.error else failure, **run))  # fmt: skip
                continue
            spans = {"prompt": range(position, position + len(texts.prompt))}
            position += len(texts.prompt)
            spans["response"] = range(position, position + len(texts.response))
            position += len(texts.response)
            scores = {task: _highest(self._parts(task, spans[roles_read(reads)[-1]], flat, probabilities.get(task, [])))
                      for task, reads in self.inputs.items() if reads == "prompt" or has_response}  # fmt: skip
            if texts.foreign:  # the multilingual head's reading: alone, or beside MiniLM's (the higher wins)
                best, at = _highest(read[at : at + len(texts.foreign)]), at + len(texts.foreign)
                scores[PROMPT_HARM] = moved(best) if texts.lifted else _highest([scores[PROMPT_HARM], best])
            verdict = self._verdict(has_response, scores, dict(texts.unreadable), texts.lifted, bool(texts.foreign))
            verdicts.append(dataclasses.replace(verdict, windows=texts.windows, **run))
        return verdicts

    def _parts(self, task: str, indices: range, pieces: list[Piece], scores: list[list[float]]) -> list[float]:
        """A task's scores of one text's pieces: every piece's and pooled sentence's, or for a task in
        ``whole_text_tasks`` the whole texts' and windows' only."""
        if task not in self.whole_text_tasks:
            return [score for i in indices for score in scores[i]]
        return [scores[i][0] for i in indices if not pieces[i].alone]

    def _score(self, pieces: list[Piece], contexts: list[int] | None = None, deadline: float | None = None
               ) -> dict[str, list[list[float]]]:  # fmt: skip
        """Every head's probabilities for every piece: its whole text's, then each pooled span's (a head
        scores only the texts of its kind, but scoring all in one batch is cheaper than two encoder calls); a
        :data:`PAIR` head reads each row beside the whole embedding of the piece ``contexts`` names (default: its own);
        :class:`~guardsdk.deadline.DeadlineExceeded` past ``deadline``."""
        texts, text_spans = [p.text for p in pieces], [p.spans for p in pieces]
        embeddings, spans = self.encoder.encode_spans(texts, text_spans, strict=True, deadline=deadline)
        rows = torch.cat([torch.cat((embeddings[i : i + 1], part)) for i, part in enumerate(spans)])
        sizes = [1 + len(part) for part in spans]
        firsts = torch.tensor([0, *sizes[:-1]]).cumsum(0)  # each piece's whole embedding, as a row of ``rows``
        context = torch.tensor(range(len(pieces)) if contexts is None else contexts, dtype=torch.long)
        beside = firsts[context].repeat_interleave(torch.tensor(sizes))
        with torch.inference_mode():
            paired = torch.cat((rows[beside], rows), 1) if PAIR in self.inputs.values() else rows
            read = {reads: paired if reads == PAIR else rows for reads in self.inputs.values()}
            return {task: [scores.tolist() for scores in head.probability(read[self.inputs[task]]).split(sizes)]
                    for task, head in self.heads.items()}  # fmt: skip

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        return await asyncio.to_thread(self.detect, pairs, policy, deadline)

    def close(self) -> None:
        """Later checks are undecided."""
        self._closed = True


__all__ = ["FAMILY", "ClassifierDetector", "Piece", "bundled_heads_path", "sentence_bounds", "sentences", "text_pieces"]
