"""Heads that read a reply beside its prompt (``ClassifierConfig.pair_tasks``): their training rows.

A pair head reads ``[prompt embedding, reply-part embedding]``. Judged with its question, "Paris." is plainly
harmless; but the pool's harmful replies all sit behind harmful prompts, so a head shown only real pairs learns to
trust the prompt, and a reply asked for by a harmless-looking prompt would pass. So each reply of a source whose
label is about the reply's own text (not ``context_labelled_sources``) is also placed behind random harmless pool
prompts with its label kept (``shuffled_prompts``), and a harmless reply's first sentence is a harmless reply too
(``first_sentence_negatives``: the pool has few short ordinary answers). Parts the detector reads of a harmless
reply (``pooled_sentences``) are harmless beside its own prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from guardsdk_trainer.config import ClassifierConfig
from guardsdk_trainer.data import Example

LABELS = {"harmful": 1, "unharmful": 0}
#: A reply's first sentence: up to its first sentence end or line break.
FIRST_SENTENCE = re.compile(r"[.!?](\s|$)|\n")


def first_sentence(text: str) -> str:
    """``text`` up to its first sentence end (or line break), stripped."""
    match = FIRST_SENTENCE.search(text)
    return (text[: match.end()] if match else text).strip()


@dataclass
class HeadRows:
    """A head's rows, index-aligned: the texts it reads, their 0/1 labels and sources, and for a pair head each
    text's prompt (else no prompts)."""

    prompts: list[str]
    texts: list[str]
    labels: list[int]
    sources: list[str]

    def subset(self, keep: Sequence[int]) -> HeadRows:
        """The rows ``keep`` names."""
        return HeadRows(*([column[i] for i in keep] if column else [] for column in vars(self).values()))


def pair_matrix(cache: object, rows: HeadRows, idx: Sequence[int], cfg: ClassifierConfig, harmless: torch.Tensor,
                generator: torch.Generator, parts: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The training matrix of rows ``idx``: each ``[prompt, reply]``; with ``cfg.shuffled_prompts`` the
    context-free rows again behind random rows of ``harmless`` (encoded harmless prompts); with
    ``cfg.first_sentence_negatives`` each context-free harmless reply's first sentence, behind its prompt and behind
    a harmless one; with ``parts`` each harmless reply's pooled parts beside its prompt. Labels alongside."""
    idx = list(idx)
    prompts = cache.encode([rows.prompts[i] for i in idx])
    replies = cache.encode([rows.texts[i] for i in idx], parts=parts)
    labels = torch.tensor([rows.labels[i] for i in idx])
    xs, ys = [torch.cat((prompts, replies), 1)], [labels]
    free = torch.tensor([rows.sources[i] not in cfg.context_labelled_sources for i in idx], dtype=torch.bool)
    for name, copies in cfg.shuffled_prompts.items():
        chosen = torch.nonzero(free & (labels == LABELS[name])).squeeze(1).repeat(copies)
        behind = harmless[torch.randint(len(harmless), (len(chosen),), generator=generator)]
        xs.append(torch.cat((behind, replies[chosen]), 1))
        ys.append(labels[chosen])
    if cfg.first_sentence_negatives:
        stripped = [rows.texts[i].strip() for i in idx]
        firsts = [(k, first) for k, i in enumerate(idx) if free[k] and rows.labels[i] == 0
                  and (first := first_sentence(stripped[k])) != stripped[k] and first]  # fmt: skip
        if firsts:
            encoded = cache.encode([first for _, first in firsts])
            behind = harmless[torch.randint(len(harmless), (len(firsts),), generator=generator)]
            own = prompts[torch.tensor([k for k, _ in firsts])]
            xs += [torch.cat((own, encoded), 1), torch.cat((behind, encoded), 1)]
            ys.append(torch.zeros(2 * len(firsts), dtype=labels.dtype))
    if parts:
        safe = [(k, cache.parts[rows.texts[i]]) for k, i in enumerate(idx) if rows.labels[i] == 0]
        safe = [(k, part) for k, part in safe if len(part)]
        if safe:
            xs.append(torch.cat([torch.cat((prompts[k].expand(len(part), -1), part), 1) for k, part in safe]))
            ys.append(torch.zeros(sum(len(part) for _, part in safe), dtype=labels.dtype))
    return torch.cat(xs), torch.cat(ys)


def harmless_prompts(examples: Sequence[Example], cfg: ClassifierConfig) -> list[str]:
    """``cfg.harmless_prompts`` of the prompts ``examples`` label harmless (each under 2,000 characters), drawn with
    ``cfg.seed``: what the shuffled rows are placed behind."""
    prompts = {e.prompt for e in examples if e.labels.get("prompt_harm") == "unharmful" and e.prompt}
    short = sorted(p for p in prompts if p.strip() and len(p) < 2000)
    return random.Random(cfg.seed).sample(short, min(cfg.harmless_prompts, len(short)))
