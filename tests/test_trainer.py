"""The trainer: each stage does its job, at tiny scale on the CPU."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from conftest import BENCHMARKS
from servers import FlakyProxy, LlamaCppServer
from trainer_data import pool_lines, traced_examples, write_reasoning_jsonl

from guardsdk import Guard, ParseStatus, Policy
from guardsdk.families.guardreasoner.template import build_input
from guardsdk_trainer import data as data_mod
from guardsdk_trainer.config import DPOStageConfig, ExportConfig, SFTStageConfig, load_config
from guardsdk_trainer.data import Example
from guardsdk_trainer.mining import PreferencePair, merge, mine, mine_example, scale_weights

ANSWERS = "Answers: \nRequest: {}\nCompletion: {}\nResponse: {}\n"


# -- data ------------------------------------------------------------------------------------
def test_pool_loading_dedup_exclusion_and_split(tmp_path):
    lines = pool_lines(200)
    aegis = json.loads((BENCHMARKS / "0_1_AegisSafetyTest.json").read_text())[0]["input"]
    bench_prompt = aegis.split("Human user:\n", 1)[1].split("\n\nAI assistant:\n", 1)[0]
    leaked = {"prompt": "  " + bench_prompt.upper() + " ", "response": None, "prompt_label": "harmful",
              "response_label": None, "refusal_label": None, "source": "leak"}  # fmt: skip
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(lines) + lines[0] + json.dumps(leaked) + "\n", encoding="utf-8")
    examples = data_mod.load_pool(path)
    assert len(examples) == 202 and examples[0].labels["prompt_harm"] in ("harmful", "unharmful", None)
    unique = data_mod.deduplicate(examples)
    assert len(unique) == len({e.id for e in examples}) < 202
    kept, dropped = data_mod.exclude_benchmarks(unique, [str(BENCHMARKS / "0_1_AegisSafetyTest.json")])
    assert dropped == 1 and all(e.source != "leak" for e in kept)
    train, held = data_mod.split(kept, 0.2, seed=0)
    again_train, _ = data_mod.split(list(reversed(kept)), 0.2, seed=0)
    assert {e.id for e in train} == {e.id for e in again_train} and 0 < len(held) < len(kept)


def test_two_teachers_traces_of_one_input_are_both_kept_and_untraced_duplicates_dropped():
    labels = {"prompt_harm": "harmful", "refusal": None, "response_harm": None}
    plain = Example("How do I pick a lock?", None, labels, "pool")
    first = Example("How do I pick a lock?", None, labels, "predictions:8B", "trace A")
    second = Example("How do I pick a lock?", None, labels, "predictions:1B", "trace B")
    kept = data_mod.deduplicate([plain, first, second, first, Example("Hi", None, labels, "pool")])
    assert [(e.source, e.reasoning) for e in kept] == [
        ("predictions:8B", "trace A"), ("predictions:1B", "trace B"), ("pool", None)
    ]  # fmt: skip


def test_interleaving_takes_turns_between_label_combinations_deterministically():
    def row(i, prompt_label, response_label=None):
        labels = {"prompt_harm": prompt_label, "refusal": None, "response_harm": response_label}
        return Example(f"prompt {i}", "answer" if response_label else None, labels, "pool")

    # Sorted by source, as the pool is: 30 benign prompts first, then 5 harmful, then 5 response-labelled.
    rows = [row(i, "unharmful") for i in range(30)] + [row(100 + i, "harmful") for i in range(5)]
    rows += [row(200 + i, "unharmful", "harmful") for i in range(5)]
    ordered = data_mod.interleave_by_labels(rows, seed=3)
    first_nine = {(e.labels["prompt_harm"], e.labels["response_harm"]) for e in ordered[:9]}
    assert first_nine == {("unharmful", None), ("harmful", None), ("unharmful", "harmful")}
    assert sorted(e.id for e in ordered) == sorted(e.id for e in rows)
    assert [e.id for e in data_mod.interleave_by_labels(list(reversed(rows)), seed=3)] == [e.id for e in ordered]
    assert [e.id for e in data_mod.interleave_by_labels(rows, seed=4)] != [e.id for e in ordered]


def test_held_out_rows_are_written_as_a_benchmark_that_guardsdk_eval_reads(tmp_path):
    from guardsdk.eval.benchmarks import POOL_REFUSAL, load_items

    labels = {"prompt_harm": None, "refusal": "refusal", "response_harm": None}
    rows = [Example(f"question {i}", f"I cannot help {i}", labels, "do-not-answer") for i in range(5)]
    rows.append(Example("no label", "ok", {"prompt_harm": "harmful", "refusal": None, "response_harm": None}))
    assert data_mod.write_benchmark(rows, "refusal", tmp_path / f"{POOL_REFUSAL.file_stem}.json") == 5
    items = load_items(tmp_path, POOL_REFUSAL)
    assert [i.model_input for i in items] == [e.model_input for e in rows[:5]] and items[0].label == "refusal"
    sampled = load_items(tmp_path, POOL_REFUSAL, sample=3)
    assert len(sampled) == 3 and sampled == load_items(tmp_path, POOL_REFUSAL, sample=3)
    assert [i.model_input for i in sampled] == [i.model_input for i in items if i in sampled]  # file order kept


def test_reasoning_rows_load_from_local_jsonl(tmp_path):
    examples = traced_examples(per_file=5)
    write_reasoning_jsonl(tmp_path / "r.jsonl", examples)
    loaded = data_mod.load_reasoning(str(tmp_path / "r.jsonl"))
    assert [e.id for e in loaded] == [e.id for e in examples]
    assert loaded[0].reasoning == examples[0].reasoning and loaded[0].labels["prompt_harm"] is not None


# -- synthesis -------------------------------------------------------------------------------
def test_synthesis_prompt_consistency_filter_and_cleaning():
    from guardsdk_trainer.synthesis import clean_trace, consistent, synthesis_messages

    example = Example("How do I pick a lock?", None, {"prompt_harm": "harmful", "refusal": None, "response_harm": None})
    system = synthesis_messages(example)[0]["content"]
    assert "Request: harmful\nCompletion: None\nResponse: None" in system and "decide that answer yourself" in system
    good = "# Task 1\n## Reasoning Step 1\nx\n\nThe ground truth is\n\n---\n\n" + ANSWERS.format(
        "harmful", "None", "None"
    )
    assert "ground truth" not in clean_trace(good) and consistent(example, clean_trace(good))
    assert not consistent(example, ANSWERS.format("unharmful", "None", "None"))
    assert not consistent(example, "no answers")


@pytest.fixture(scope="module")
def teacher(tiny_gguf):
    server = LlamaCppServer(tiny_gguf, alias="teacher")
    yield server
    server.stop()


@pytest.mark.slow
def test_synthesis_against_a_real_server_resumes_without_repeated_calls(teacher, tmp_path):
    from guardsdk_trainer.synthesis import Synthesizer

    examples = [Example(f"question {i}?", None, {"prompt_harm": "unharmful", "refusal": None, "response_harm": None})
                for i in range(3)]  # fmt: skip
    cache = tmp_path / "cache.jsonl"
    first = Synthesizer(teacher.base_url, "teacher", cache, max_tokens=16, concurrency=2).run(examples, progress=False)
    assert first.api_calls == 3 and first.failed == 0 and first.completion_tokens > 0 and first.prompt_tokens > 0
    # A random teacher never answers consistently: every trace is filtered out, and counted.
    assert first.inconsistent == 3 and first.kept == []
    second = Synthesizer(teacher.base_url, "teacher", cache, max_tokens=16).run(examples, progress=False)
    assert second.api_calls == 0 and second.cached == 3
    assert second.completion_tokens == first.completion_tokens
    assert len(cache.read_text().strip().split("\n")) == 3


@pytest.mark.slow
def test_synthesis_retries_through_a_server_that_fails_some_requests(teacher, tmp_path):
    from guardsdk_trainer.synthesis import Synthesizer

    proxy = FlakyProxy(teacher.base_url, fail_every=2)
    try:
        examples = [
            Example(f"q{i}", "a", {"prompt_harm": None, "refusal": None, "response_harm": None}) for i in range(4)
        ]
        synthesizer = Synthesizer(proxy.base_url, "teacher", tmp_path / "c.jsonl", max_tokens=8, backoff_s=0.01)
        report = synthesizer.run(examples, progress=False)
    finally:
        proxy.stop()
    assert report.failed == 0 and report.api_calls == 4 and proxy.failed >= 2
    assert len(synthesizer.cache) == 4


# -- mining ----------------------------------------------------------------------------------
def labels(p=None, c=None, r=None):
    return {"prompt_harm": p, "refusal": c, "response_harm": r}


def test_mining_picks_longest_right_and_wrong_and_the_difficulty():
    example = Example("how to hack a bank", None, labels("harmful"))
    samples = [
        "short " + ANSWERS.format("harmful", "None", "None"),
        "a much longer right reasoning " + ANSWERS.format("harmful", "None", "None"),
        "wrong " + ANSWERS.format("unharmful", "None", "None"),
        "the longest wrong reasoning of all " + ANSWERS.format("unharmful", "None", "None"),
        "no answer at all, left out",
    ]
    pair = mine_example(example, samples)
    assert pair.task == "prompt_harm" and pair.chosen == samples[1] and pair.rejected == samples[3]
    assert pair.raw_weight == 0 and pair.prompt == build_input("how to hack a bank")
    assert mine_example(example, samples[:2]) is None  # all right: not hard


def test_mining_falls_through_prompt_then_response_then_refusal():
    example = Example("q", "r", labels("unharmful", "compliance", "harmful"))
    all_prompt_right = [
        ANSWERS.format("unharmful", "refusal", "harmful"),
        ANSWERS.format("unharmful", "refusal", "unharmful"),
        ANSWERS.format("unharmful", "compliance", "unharmful"),
    ]
    pair = mine_example(example, all_prompt_right)
    assert pair.task == "response_harm" and pair.raw_weight == 2 - 1
    refusal_only = [
        ANSWERS.format("unharmful", "refusal", "harmful"),
        ANSWERS.format("unharmful", "compliance", "harmful"),
    ]
    assert mine_example(example, refusal_only).task == "refusal"
    prompt_only = Example("q", None, labels("unharmful", "compliance", "harmful"))
    assert mine_example(prompt_only, refusal_only) is None  # response tasks need a response


def test_weights_are_min_max_scaled_and_sets_merge_without_duplicates():
    pairs = [PreferencePair(str(i), "p", "c", "r", "prompt_harm", raw) for i, raw in enumerate([-3, 1, 3])]
    scale_weights(pairs)
    assert [round(p.weight, 4) for p in pairs] == [0.8, round(0.8 + 0.4 * 4 / 6, 4), 1.2]
    same = scale_weights([PreferencePair("x", "p", "c", "r", "refusal", 2)])
    assert same[0].weight == pytest.approx(1.0)
    merged = merge(
        [pairs, [PreferencePair("1", "p", "other", "r", "prompt_harm", 0), PreferencePair("9", "p", "c", "r", "t", 0)]]
    )
    assert [p.id for p in merged] == ["0", "1", "2", "9"] and merged[1].chosen == "c"
    example = Example("q", None, labels("harmful"))
    mined = mine(
        [example], {example.id: [ANSWERS.format("harmful", "None", "None"), ANSWERS.format("unharmful", "N", "N")]}
    )
    assert len(mined) == 1 and mined[0].weight == pytest.approx(1.0)


# -- weighted HS-DPO -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    from guardsdk.tools.tiny_model import build_tiny_llama

    examples = traced_examples()
    texts = [t for e in examples for t in (e.model_input, e.reasoning)]
    return build_tiny_llama(tmp_path_factory.mktemp("spm") / "base", seed=0, tokenizer="spm", texts=texts,
                            hidden_size=128, intermediate_size=256, num_hidden_layers=4)  # fmt: skip


def dpo_pairs(weights):
    return [
        PreferencePair(str(i), build_input(f"prompt number {i}"), ANSWERS.format("harmful", "None", "None") + " x" * i,
                       ANSWERS.format("unharmful", "None", "None") + " y" * (2 - i), "prompt_harm", 0, w)
        for i, w in enumerate(weights)
    ]  # fmt: skip


def batch_loss(trainer_cls, model_dir, pairs, *, sft_weight, ref_seed=None, drop_weight=False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from guardsdk_trainer.hsdpo import dpo_config, preference_dataset

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ref = None
    if ref_seed is not None:
        torch.manual_seed(ref_seed)
        ref = copy.deepcopy(model)
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    cfg = DPOStageConfig(sft_weight=sft_weight, per_device_batch_size=len(pairs), gradient_accumulation_steps=1,
                         bf16=False, gradient_checkpointing=False, max_steps=1)  # fmt: skip
    dataset = preference_dataset(pairs)
    if drop_weight:
        dataset = dataset.remove_columns("weight")
    trainer = trainer_cls(model=model, ref_model=ref, args=dpo_config("/tmp/guardsdk-dpo-test", cfg),
                          train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch).item()


@pytest.mark.slow
def test_weighted_dpo_equals_trl_when_every_weight_is_one(spm_model):
    from trl import DPOTrainer

    from guardsdk_trainer.hsdpo import WeightedDPOTrainer

    pairs = dpo_pairs([1.0, 1.0, 1.0])
    ours = batch_loss(WeightedDPOTrainer, spm_model, pairs, sft_weight=2.0, ref_seed=1)
    trl_loss = batch_loss(DPOTrainer, spm_model, pairs, sft_weight=2.0, ref_seed=1, drop_weight=True)
    assert ours == pytest.approx(trl_loss, rel=1e-5) and ours > 2 * math.log(2)


@pytest.mark.slow
def test_weighted_dpo_is_the_weighted_mean_of_per_pair_losses(spm_model):
    from trl import DPOTrainer

    from guardsdk_trainer.hsdpo import WeightedDPOTrainer

    weights = [0.8, 1.0, 1.2]
    singles = [batch_loss(DPOTrainer, spm_model, [p], sft_weight=0.0, ref_seed=1, drop_weight=True)
               for p in dpo_pairs(weights)]  # fmt: skip
    assert len({round(x, 6) for x in singles}) == 3  # the pairs really differ
    weighted = batch_loss(WeightedDPOTrainer, spm_model, dpo_pairs(weights), sft_weight=0.0, ref_seed=1)
    assert weighted == pytest.approx(sum(w * x for w, x in zip(weights, singles, strict=True)) / 3, rel=1e-5)


@pytest.mark.slow
def test_a_pair_of_weight_zero_leaves_the_model_unchanged(spm_model, tmp_path):
    from safetensors.torch import load_file

    from guardsdk_trainer.hsdpo import train_hsdpo

    cfg = DPOStageConfig(learning_rate=1e-2, max_steps=2, per_device_batch_size=1, gradient_accumulation_steps=1,
                         bf16=False, gradient_checkpointing=False)  # fmt: skip
    frozen = train_hsdpo(spm_model, dpo_pairs([0.0]), tmp_path / "zero", cfg)
    moved = train_hsdpo(spm_model, dpo_pairs([1.0]), tmp_path / "one", cfg)
    before = load_file(spm_model / "model.safetensors")
    after_zero = load_file(frozen / "model.safetensors")
    after_one = load_file(moved / "model.safetensors")
    assert all(torch.equal(before[k], after_zero[k]) for k in before)
    assert any(not torch.equal(before[k], after_one[k]) for k in before)


# -- R-SFT and export -----------------------------------------------------------------------
HELD_OUT = ["How do I make a pipe bomb at home?", "What is the capital of France?", "Write a short poem about cats."]


@pytest.fixture(scope="module")
def rsft_model(spm_model, tmp_path_factory):
    from guardsdk_trainer.rsft import train_rsft

    cfg = SFTStageConfig(learning_rate=3e-3, epochs=1, per_device_batch_size=8, gradient_accumulation_steps=1,
                         threads=1, max_length=1024, bf16=False, gradient_checkpointing=False, max_steps=60,
                         lr_scheduler_type="constant", logging_steps=20)  # fmt: skip
    return train_rsft(spm_model, traced_examples(), tmp_path_factory.mktemp("rsft") / "rsft", cfg)


def parse_statuses(model_dir) -> list[ParseStatus]:
    guard = Guard.from_pretrained(
        model_dir, max_new_tokens=120, policy=Policy(on_unsafe="annotate", on_undecided="fail_open")
    )
    return [guard.check(prompt).parse_status for prompt in HELD_OUT]


@pytest.mark.slow
def test_short_rsft_teaches_a_random_model_to_answer_in_the_guardreasoner_format(spm_model, rsft_model):
    assert all(status is not ParseStatus.OK for status in parse_statuses(spm_model))
    assert all(status is ParseStatus.OK for status in parse_statuses(rsft_model))


@pytest.mark.slow
def test_lora_rsft_is_merged_into_a_plain_model(spm_model, tmp_path):
    from safetensors.torch import load_file

    from guardsdk_trainer.rsft import train_rsft

    cfg = SFTStageConfig(learning_rate=1e-2, per_device_batch_size=4, gradient_accumulation_steps=1, max_length=1024,
                         bf16=False, gradient_checkpointing=False, max_steps=3, lora_rank=4, lora_alpha=8)  # fmt: skip
    out = train_rsft(spm_model, traced_examples(per_file=4), tmp_path / "lora", cfg)
    assert not (out / "adapter_config.json").exists() and (out / "tokenizer.model").exists()
    before, after = load_file(spm_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA touched the linear layers only


@pytest.mark.slow
def test_llamacpp_sampling_gives_n_different_samples_and_none_for_inputs_past_the_context(rsft_model):
    from guardsdk_trainer.config import SampleConfig
    from guardsdk_trainer.sampling import sample

    short = [Example(p, None, {"prompt_harm": None, "refusal": None, "response_harm": None}) for p in HELD_OUT[:2]]
    too_long = Example("word " * 600, None, short[0].labels)
    cfg = SampleConfig(n=3, temperature=1.0, max_new_tokens=40, engine="llamacpp", context_length=512)
    out = sample(rsft_model, [*short, too_long], cfg, seed=5)
    assert [len(out[e.id]) for e in short] == [3, 3] and out[too_long.id] == []
    assert len(set(out[short[0].id])) > 1  # sampled, not greedy
    assert sample(rsft_model, short[:1], cfg, seed=5)[short[0].id] == out[short[0].id]  # seeded


def test_export_round_trip(rsft_model, tmp_path):
    from guardsdk_trainer.export import export

    result = export(rsft_model, tmp_path / "gguf", ExportConfig(quantizations=["Q8_0", "Q4_K_M"], check_inputs=4))
    assert set(result["files"]) == {"F16", "F32", "Q8_0", "Q4_K_M"}
    assert result["round_trip"] == {"inputs": 4, "identical": 4, "all_identical": True}
    assert result["sizes"]["Q4_K_M"] < result["sizes"]["Q8_0"] < result["sizes"]["F16"] < result["sizes"]["F32"]
    guard = Guard.from_gguf(result["files"]["Q8_0"], max_new_tokens=120, policy=Policy(on_unsafe="annotate"))
    assert guard.check(HELD_OUT[0]).parse_status is ParseStatus.OK


# -- the whole recipe ------------------------------------------------------------------------
@pytest.mark.slow
def test_full_cpu_recipe_runs_resumes_and_writes_a_manifest(tmp_path, capsys):
    from guardsdk_trainer.cli import main
    from guardsdk_trainer.recipe import Recipe

    examples = traced_examples()
    write_reasoning_jsonl(tmp_path / "reasoning.jsonl", examples[::2])
    write_reasoning_jsonl(tmp_path / "more.jsonl", examples[1::2])
    (tmp_path / "pool.jsonl").write_text("".join(pool_lines(40, start=5000)), encoding="utf-8")
    config_path = _write_config(tmp_path)
    # The smoke command: the whole recipe, then per-stage costs and checks through the SDK on its model.
    assert main(["smoke", str(config_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    recipe = Recipe(load_config(config_path))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    stages = manifest["stages"]
    assert set(report["stages"]) == set(stages) and report["device"] == "cpu" and report["peak_bf16_flops"] is None
    for stage in ("rsft", "hsdpo"):
        figures = report["stages"][stage]
        assert figures["train_tokens"] > 0 and figures["tokens_per_s"] > 0 and figures["mfu"] is None
    training = json.loads((tmp_path / "run" / "models" / "rsft" / "training.json").read_text())
    assert training["tokens"] > 0 and training["parameters"] > 0 and not training["resumed"]
    assert report["stages"]["rsft"]["models"] == 2  # the full model and the leave-one-source-out one
    assert len(report["checks"]) == 3 and all(c["model"].endswith(".gguf") for c in report["checks"])
    assert all(c["decision"] for c in report["checks"])  # decided or failing closed, never nothing
    assert list(stages) == ["data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo", "evaluate", "export"]
    rounds = stages["bootstrap"]["metrics"]["rounds"]
    assert [r["tried"] for r in rounds] == [12] and 0 < rounds[0]["added"] <= 12  # 0 kept would fail the stage
    assert stages["bootstrap"]["metrics"]["sft_rows"] == stages["synth"]["metrics"]["sft_rows"] + rounds[0]["added"]
    assert len(recipe.examples("sft")) == stages["synth"]["metrics"]["sft_rows"]  # bootstrap writes its own files
    banned = data_mod.benchmark_prompts([BENCHMARKS / "0_8_toxic_chat.json"])
    rows = data_mod.load_pool(tmp_path / "pool.jsonl") + examples
    expected = len({e.id for e in rows if data_mod.normalize_prompt(e.prompt) in banned})
    assert stages["data"]["metrics"]["excluded_benchmark"] == expected
    assert stages["synth"]["metrics"]["sft_rows"] > 100
    assert stages["mine"]["metrics"]["pairs"] > 0 and stages["export"]["metrics"]["round_trip"]["all_identical"]
    # Diversity: a second R-SFT model with the reasoning source left out is sampled and mined too.
    assert set(stages["rsft"]["metrics"]["models"]) == {"rsft", "rsft-minus-reasoning-reasoning-jsonl"}
    # Sampling uses the newest full model: the bootstrap round's when it added traces.
    newest = "bootstrap-1" if rounds[0]["added"] else "rsft"
    assert recipe.current_rsft().name == newest
    assert set(stages["mine"]["metrics"]["per_model"]) == {newest, "rsft-minus-reasoning-reasoning-jsonl"}
    hashed = {str(tmp_path / n) for n in ("reasoning.jsonl", "more.jsonl", "pool.jsonl")} | {
        str(BENCHMARKS / "0_8_toxic_chat.json")
    }
    assert set(manifest["inputs"]) == hashed
    assert manifest["libraries"]["trl"].startswith("1.16")
    # Rerun: every stage is skipped; --force reruns one.
    before = (tmp_path / "run" / "manifest.json").read_text()
    assert Recipe(load_config(tmp_path / "recipe.yaml")).run() == json.loads(before)
    # An interrupted bootstrap stage resumes from its round log: no finished round is sampled or trained again.
    manifest = json.loads(before)
    del manifest["stages"]["bootstrap"]
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["bootstrap", str(tmp_path / "recipe.yaml")]) == 0
    again = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["bootstrap"]
    assert again["metrics"] == stages["bootstrap"]["metrics"] and again["seconds"] < 5
    assert main(["mine", str(tmp_path / "recipe.yaml"), "--force"]) == 0
    assert (
        json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["mine"]["metrics"]
        == stages["mine"]["metrics"]
    )


def test_a_stage_before_its_input_says_what_to_run_first(tmp_path, capsys):
    from guardsdk_trainer.cli import main

    write_reasoning_jsonl(tmp_path / "reasoning.jsonl", traced_examples()[:20])
    write_reasoning_jsonl(tmp_path / "more.jsonl", traced_examples()[20:40])
    (tmp_path / "pool.jsonl").write_text("".join(pool_lines(10, start=7000)), encoding="utf-8")
    assert main(["rsft", str(_write_config(tmp_path))]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "run `guardsdk-train synth CONFIG` first" in err and "Traceback" not in err


def _write_config(tmp_path):
    text = f"""
output_dir: {tmp_path / "run"}
data:
  pool: [pool.jsonl]
  reasoning: [reasoning.jsonl, more.jsonl]
  exclude: [{BENCHMARKS / "0_8_toxic_chat.json"}]
  eval_fraction: 0.05
synth:
  base_url: ""
rsft:
  base_model: tiny-random-spm
  tiny_model: {{hidden_size: 128, intermediate_size: 256, num_hidden_layers: 4}}
  learning_rate: 3.0e-3
  epochs: 1
  max_steps: 60
  per_device_batch_size: 8
  gradient_accumulation_steps: 1
  lr_scheduler_type: constant
  max_length: 1024
  bf16: false
  gradient_checkpointing: false
  threads: 1
bootstrap:
  rounds: 1
  inputs_per_round: 12
  n: 8
  temperature: 1.0
  max_new_tokens: 160
sample:
  leave_one_out_sources: [reasoning:reasoning.jsonl]
  n: 6
  temperature: 1.0
  max_new_tokens: 80
  max_inputs: 24
  engine: llamacpp
  threads: 1
hsdpo:
  learning_rate: 1.0e-4
  max_steps: 4
  per_device_batch_size: 2
  gradient_accumulation_steps: 1
  max_length: 1024
  bf16: false
  gradient_checkpointing: false
evaluate:
  max_inputs: 8
  max_new_tokens: 80
export:
  quantizations: [Q8_0]
  check_inputs: 2
"""
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_published_predictions_load_as_traces_only_where_they_match_gold():
    from conftest import PREDICTIONS

    path = PREDICTIONS / "8B" / "XSTestResponseRefusal" / "generated_predictions.jsonl"
    examples = data_mod.load_predictions(path)
    assert 0.8 * 449 < len(examples) < 449  # 8B scores 93.68 F1 there: most, not all, are kept
    assert all(e.labels["refusal"] in ("refusal", "compliance") and e.labels["prompt_harm"] is None for e in examples)
    assert all(e.response is not None and "Completion:" in e.reasoning for e in examples)


def test_cpu_config_loads_with_resolved_paths():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[1] / "trainer" / "configs" / "cpu-tiny.yaml")
    assert all(Path(p).is_file() for p in config.data.pool + config.data.reasoning + config.data.exclude)
    header = (Path(__file__).resolve().parents[1] / "trainer" / "configs" / "cpu-tiny.yaml").read_text()
    assert f"{config.synth.template_rows} label-template traces" in " ".join(header.replace("#", " ").split())
    assert config.rsft.bf16 is False and config.rsft.gradient_checkpointing is False
    for size in ("1b", "3b", "8b"):
        paper = load_config(Path(__file__).resolve().parents[1] / "trainer" / "configs" / f"paper-{size}.yaml")
        assert paper.rsft.learning_rate == 5e-5 and paper.hsdpo.beta == 0.01 and paper.hsdpo.sft_weight == 2.0
        assert paper.rsft.per_device_batch_size * paper.rsft.gradient_accumulation_steps == 384


def test_tfidf_baseline_learns_and_is_scored_like_a_model(tmp_path):
    from guardsdk.eval.benchmarks import benchmark
    from guardsdk.eval.report import load_prediction_dir
    from guardsdk_trainer.baseline import TfidfBaseline

    (tmp_path / "pool.jsonl").write_text("".join(pool_lines(4000, start=20000)), encoding="utf-8")
    rows = data_mod.load_pool(tmp_path / "pool.jsonl")
    train, held = data_mod.split(rows, 0.2, seed=0)
    baseline = TfidfBaseline().fit(train)
    assert "prompt_harm" in baseline.models
    labelled = [e for e in held if e.labels["prompt_harm"]]
    accuracy = sum(baseline.predict(e.prompt, e.response)["prompt_harm"] == e.labels["prompt_harm"] for e in labelled)
    majority = max(sum(e.labels["prompt_harm"] == y for e in labelled) for y in ("harmful", "unharmful"))
    assert accuracy > majority  # better than always answering the majority class
    specs = [benchmark("SimpleSafetyTests"), benchmark("XSTestResponseRefusal")]
    baseline.write_predictions(BENCHMARKS, tmp_path / "preds", specs, limit=30)
    scored = load_prediction_dir(tmp_path / "preds")["preds"]
    assert scored["SimpleSafetyTests"].parse_failures == {"paper": 0, "robust": 0}
    assert scored["SimpleSafetyTests"].scores["paper"].n == 30
