"""Does each stage help? Held-out F1 per task (greedy, unreadable outputs counted wrong) of a trained model
beside the no-reasoning TF-IDF baseline on the same rows, and preference accuracy on held-out mined pairs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from guardsdk.eval.scoring import binary_scores, wrong
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.verdict import POSITIVE_LABEL, PROMPT_HARM, TASKS
from guardsdk_trainer.baseline import TfidfBaseline
from guardsdk_trainer.data import Example
from guardsdk_trainer.mining import PreferencePair
from guardsdk_trainer.progress import bar
from guardsdk_trainer.tokens import dpo_features


def task_f1(examples: Sequence[Example], predictions: Sequence[dict[str, str | None]]) -> dict[str, Any]:
    """F1 (%, positive: harmful / refusal) per task over the examples labelled for it; a missing or unreadable
    answer counts as the wrong label. ``n`` is how many examples each task has."""
    out: dict[str, Any] = {}
    for task in TASKS:
        rows = [(e.labels[task], p.get(task)) for e, p in zip(examples, predictions, strict=True)
                if e.labels.get(task) and (task == PROMPT_HARM or e.response is not None)]  # fmt: skip
        if not rows:
            continue
        golds = [gold for gold, _ in rows]
        preds = [pred if pred in (gold, wrong(gold, task)) else wrong(gold, task) for gold, pred in rows]
        out[task] = {"f1": round(binary_scores(golds, preds, POSITIVE_LABEL[task]).f1, 1), "n": len(rows)}
    return out


def greedy_outputs(model_dir: str | os.PathLike[str], examples: Sequence[Example], max_new_tokens: int,
                   batch_size: int, engine: str = "hf", threads: int | None = None) -> list[str]:  # fmt: skip
    """Greedy outputs of a Hugging Face model (transformers on CPU or the first GPU, or llama.cpp on its
    lossless GGUF with ``engine="llamacpp"``), behind a progress bar."""
    if engine == "llamacpp":
        from guardsdk_trainer.sampling import LlamaCppSession

        session = LlamaCppSession.open(model_dir, 4096, threads)
        outputs = []
        with bar(len(examples), f"greedy outputs of {os.path.basename(model_dir)}", unit="input") as progress:
            for example in examples:
                outputs.append(session.complete(example.model_input, max_new_tokens, 0.0, 1.0, 0) or "")
                progress.update(1)
        LlamaCppSession.close_current()
        return outputs
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device).eval()
    texts: list[str] = []
    with bar(len(examples), f"greedy outputs of {os.path.basename(model_dir)}", unit="input") as progress:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            encoded = tokenizer([e.model_input for e in chunk], return_tensors="pt", padding=True,
                                split_special_tokens=True).to(device)  # fmt: skip
            with torch.inference_mode():
                generated = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens,
                                           pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            texts += tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
            progress.update(len(chunk))
    return texts


def model_f1(model_dir: str | os.PathLike[str], examples: Sequence[Example], max_new_tokens: int,
             batch_size: int, engine: str = "hf", threads: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A model's held-out F1 per task, and the share of its outputs the parser could read."""
    outputs = greedy_outputs(model_dir, examples, max_new_tokens, batch_size, engine, threads)
    verdicts = [parse_output(text, has_response=e.response is not None)
                for e, text in zip(examples, outputs, strict=True)]  # fmt: skip
    readable = sum(v.parse_status.value == "ok" for v in verdicts)
    return {"tasks": task_f1(examples, [v.labels for v in verdicts]),
            "readable": round(readable / len(examples), 3) if examples else None}  # fmt: skip


def baseline_f1(train: Sequence[Example], held_out: Sequence[Example], seed: int = 0) -> dict[str, Any]:
    """The TF-IDF + logistic regression baseline trained on ``train``, scored like a model on ``held_out``."""
    baseline = TfidfBaseline(seed=seed).fit(train)
    return {"tasks": task_f1(held_out, [baseline.predict(e.prompt, e.response) for e in held_out]),
            "train_rows": baseline.train_sizes}  # fmt: skip


def preference_accuracy(model_dir: str | os.PathLike[str], pairs: Sequence[PreferencePair],
                        max_length: int) -> dict[str, Any]:  # fmt: skip
    """The share of pairs whose chosen output the model gives a higher log-probability (summed over the
    output's tokens, what DPO moves) than the rejected one, and the mean margin."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    rows, _ = dpo_features(pairs, tokenizer, max_length)

    def logprob(prompt: list[int], output: list[int]) -> float:
        ids = torch.tensor([prompt + output])
        with torch.inference_mode():
            logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
        return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(output)[:, None]).sum())

    margins = [logprob(r["prompt_ids"], r["chosen_ids"]) - logprob(r["prompt_ids"], r["rejected_ids"]) for r in rows]
    if not margins:
        return {"pairs": 0, "accuracy": None, "mean_margin": None}
    return {"pairs": len(margins), "accuracy": round(sum(m > 0 for m in margins) / len(margins), 3),
            "mean_margin": round(sum(margins) / len(margins), 2)}  # fmt: skip
