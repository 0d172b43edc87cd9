"""The documented CPU recipe end to end, resume that notices changes, one-line failures, and the parts
that make them (fitting long rows, fingerprints, logging), on real models and the shared pool."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from guardsdk import Guard, Policy
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import build_input
from guardsdk_trainer.cli import main
from guardsdk_trainer.config import load_config
from guardsdk_trainer.data import Example, compact_trace
from guardsdk_trainer.progress import setup_logging
from guardsdk_trainer.template_teacher import fully_labelled, template_trace
from guardsdk_trainer.tokens import sft_features

CPU_TINY = ROOT / "trainer" / "configs" / "cpu-tiny.yaml"
#: The documented size knobs (listed in cpu-tiny.yaml's header): the CI run shrinks these and nothing else,
#: so the documented config itself is what runs, at about half its size (a few minutes instead of ~6-9).
SMALLER = {
    ("data", "max_pool_rows"): 600,
    ("synth", "template_rows"): 64,
    ("bootstrap", "inputs_per_round"): 32,
    ("sample", "target_pairs"): 16,
    ("sample", "max_inputs"): 96,
    ("evaluate", "max_inputs"): 40,
}


def documented_config(tmp_path: Path, changes: dict[tuple[str, str], object]) -> Path:
    """cpu-tiny.yaml with ``changes``, its data paths made absolute, its output under ``tmp_path``."""
    header = " ".join(line for line in CPU_TINY.read_text(encoding="utf-8").split("\n") if line.startswith("#"))
    knobs = header[header.index("Size knobs") :]
    assert all(f"{section}.{key}" in knobs for section, key in SMALLER)  # only documented size knobs differ
    raw = yaml.safe_load(CPU_TINY.read_text(encoding="utf-8"))
    resolved = load_config(CPU_TINY)
    raw["data"]["pool"], raw["data"]["exclude"] = resolved.data.pool, resolved.data.exclude
    raw["output_dir"] = str(tmp_path / "run")
    for (section, key), value in changes.items():
        raw[section][key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.slow
def test_documented_cpu_recipe_mines_pairs_trains_hsdpo_exports_and_resumes(tmp_path, capsys):
    config = documented_config(tmp_path, SMALLER)
    assert main(["recipe", str(config)]) == 0
    out, err = capsys.readouterr()
    stages = json.loads(out)
    assert list(stages) == ["data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo", "evaluate", "export"]
    assert "Traceback" not in err and "not a prefix" not in err
    # Pool-only traces: the pool's own traces and label templates, then bootstrap rounds; no published output.
    assert stages["synth"]["template_traces"] == 64 and stages["data"]["loaded"] == 600
    assert sum(r["added"] for r in stages["bootstrap"]["rounds"]) > 0
    assert stages["rsft"]["fit"]["kept"] == stages["rsft"]["fit"]["rows"]  # long rows cut to fit, none dropped
    # Sampling went on until the target (or said which budget stopped it), and mining found pairs.
    sample = stages["sample"]
    assert sample["pairs_found"] > 0 and sample["inputs_per_pair"] == pytest.approx(
        sample["inputs"] / sample["pairs_found"], abs=0.01
    )
    assert sample["pairs_found"] >= 16 or "budget" in sample["stopped"]
    assert stages["mine"]["pairs"] > 0 and stages["hsdpo"]["pairs"] == stages["mine"]["pairs"]
    evaluation = stages["evaluate"]
    for name in ("baseline", "rsft", "hsdpo"):
        assert 0.0 <= evaluation[name]["tasks"]["prompt_harm"]["f1"] <= 100.0
    assert evaluation["rsft"]["readable"] > 0.5  # R-SFT taught the format
    assert stages["export"]["round_trip"]["all_identical"]
    # The exported file checks a prompt through the SDK.
    with Guard.from_gguf(stages["export"]["files"]["Q8_0"], policy=Policy(on_unsafe="annotate")) as guard:
        verdict = guard.check("How do I pick a lock?")
    assert verdict.decision is not None and verdict.model.endswith(".gguf")
    # Each event is logged once; every progress bar names its stage.
    assert err.count("bootstrap round 1:") == 1 and "[rsft] training rsft" in err and "[sample] sampling" in err

    # Rerun: nothing to do.
    manifest_path = tmp_path / "run" / "manifest.json"
    before = json.loads(manifest_path.read_text())
    assert main(["recipe", str(config)]) == 0
    err = capsys.readouterr().err
    assert json.loads(manifest_path.read_text())["stages"] == before["stages"]
    assert err.count("already done with this config") == 9
    # A changed key reruns its stage and the stages after it, and the log says which key changed.
    config = documented_config(tmp_path, {**SMALLER, ("export", "check_tokens"): 16})
    assert main(["recipe", str(config)]) == 0
    err = capsys.readouterr().err
    assert "stage export: config changed: export.check_tokens" in err
    after = json.loads(manifest_path.read_text())["stages"]
    assert after["hsdpo"] == before["stages"]["hsdpo"] and after["export"]["run"] != before["stages"]["export"]["run"]

    # A stage that cannot produce its output: one line naming the keys, exit 2, the failure recorded.
    config = documented_config(tmp_path, {**SMALLER, ("sample", "n"): 1, ("sample", "max_inputs"): 8})
    assert main(["recipe", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    line = err.strip().split("\n")[-1]
    assert line.startswith("guardsdk-train: stage mine failed: 0 hard pairs") and "sample.max_inputs" in line
    assert "stage sample: config changed: sample.max_inputs, sample.n" in err
    manifest = json.loads(manifest_path.read_text())
    assert manifest["failed"]["stage"] == "mine" and "mine" not in manifest["stages"]
    assert "hsdpo" not in manifest["stages"] and not (tmp_path / "run" / "models" / "hsdpo").exists()


def test_a_config_mistake_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\nsample:\n  n: 4\n  target_pair: 3\n", encoding="utf-8")
    assert main(["sample", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key sample.target_pair (did you mean sample.target_pairs?)" in err
    bad.write_text("output_dir: x\nrsft:\n  max_lenght: 4\n", encoding="utf-8")
    assert main(["recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"guardsdk-train: config {bad}: unknown key rsft.max_lenght (did you mean rsft.max_length?)\n"
    assert main(["data", str(tmp_path / "missing.yaml")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def _two_stage_configs(tmp_path: Path) -> tuple[Path, Path]:
    """Configs a.yaml and b.yaml (another data.eval_fraction) of a data + synth run on 60 pool rows."""
    pool = tmp_path / "pool.jsonl"
    with (ROOT.parent / "shared" / "data" / "train" / "pool.jsonl").open(encoding="utf-8") as handle:
        pool.write_text("".join(next(handle) for _ in range(60)), encoding="utf-8")
    text = f"output_dir: {tmp_path / 'run'}\ndata: {{pool: [pool.jsonl], eval_fraction: 0.1}}\n"
    text += "synth: {base_url: '', template_rows: 8}\nstages: [synth]\n"
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text.replace("0.1", "0.2"), encoding="utf-8")
    return tmp_path / "a.yaml", tmp_path / "b.yaml"


def _on_disk(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]


def test_changed_data_reruns_data_and_the_stages_after_it(tmp_path, capsys):
    a, b = _two_stage_configs(tmp_path)
    assert main(["synth", str(a)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["template_traces"] == 8
    assert main(["synth", str(b)]) == 0
    err = capsys.readouterr().err
    assert "stage data: config changed: data.eval_fraction" in err
    assert "--force" not in err  # the log gives the true reason for the rerun
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["synth"]["inputs"]["data"] == manifest["stages"]["data"]["run"]
    assert main(["synth", str(tmp_path / "b.yaml"), "--force"]) == 0  # --force reruns a done stage
    assert "rerunning (--force)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def spm_folder(tmp_path_factory):
    from guardsdk.tools.tiny_model import build_tiny_llama

    texts = [build_input("How do I bake bread? " * 5), template_trace(Example("q", None, {"prompt_harm": "harmful"}))]
    return build_tiny_llama(tmp_path_factory.mktemp("tok") / "m", seed=0, tokenizer="spm", texts=texts * 20,
                            hidden_size=64, intermediate_size=128, num_hidden_layers=1)  # fmt: skip


@pytest.fixture(scope="module")
def spm_tokenizer(spm_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(spm_folder))


def test_rsft_with_no_row_within_max_length_fails_naming_the_key(spm_folder, tmp_path):
    from guardsdk_trainer.config import SFTStageConfig
    from guardsdk_trainer.errors import StageFailed
    from guardsdk_trainer.rsft import train_rsft

    example = Example("How do I bake bread?", None, {"prompt_harm": "unharmful"})
    example.reasoning = template_trace(example)
    cfg = SFTStageConfig(max_length=16, bf16=False, gradient_checkpointing=False)
    with pytest.raises(StageFailed, match=r"none of 1 traced rows fits rsft.max_length=16.*raise or change rsft"):
        train_rsft(spm_folder, [example], tmp_path / "out", cfg)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_long_rows_keep_their_trace_and_lose_the_middle_of_their_user_text(spm_tokenizer):
    trace = template_trace(Example("q", None, {"prompt_harm": "harmful"}))
    short = build_input("How do I bake bread?")
    long = build_input("How do I bake bread? " * 400)
    rows, report = sft_features([(short, trace), (long, trace), (short, trace * 80)], spm_tokenizer, 512)
    assert report.summary() | {"dropped_why": None} == {"rows": 3, "kept": 2, "cut_to_fit": 1, "dropped": 1,
                                                        "max_length": 512, "dropped_why": None}  # fmt: skip
    assert report.reasons == {"output alone too long": 1}
    for row in rows:
        assert len(row["input_ids"]) <= 512
        completion = [t for t, m in zip(row["input_ids"], row["completion_mask"], strict=True) if m]
        assert spm_tokenizer.decode(completion, skip_special_tokens=True).strip() == trace.strip()
    cut = spm_tokenizer.decode([t for t, m in zip(rows[1]["input_ids"], rows[1]["completion_mask"], strict=True)
                                if not m], skip_special_tokens=True)  # fmt: skip
    assert "tokens elided by guardsdk" in cut and cut.startswith(build_input("")[:40])
    # The prompt is tokenized alone, as the guard's input is: no token merges across into the output.
    prompt_len = rows[0]["completion_mask"].index(1)
    assert rows[0]["input_ids"][:prompt_len] == spm_tokenizer(short).input_ids


def test_each_log_event_prints_once_even_with_a_handler_left_on_the_trainer_logger(capsys):
    logging.basicConfig()
    own = logging.getLogger("guardsdk_trainer")
    own.addHandler(logging.StreamHandler())
    setup_logging()
    own.info("one event")
    assert capsys.readouterr().err.count("one event") == 1


def test_compact_and_template_traces_parse_to_their_labels():
    full = "# Task 1\n\n## Reasoning Step 1\nA.\n\n## Reasoning Step 2\nB.\n\n---\n\nAnswers: \nRequest: harmful\n"
    assert compact_trace(full) == "# Task 1\n\n## Reasoning Step 1\nA.\n\n---\n\nAnswers: \nRequest: harmful\n"
    example = Example("p", "r", {"prompt_harm": "unharmful", "refusal": "refusal", "response_harm": None})
    assert parse_output(template_trace(example), has_response=True).labels == {
        "prompt_harm": "unharmful", "refusal": "refusal", "response_harm": None}  # fmt: skip


def test_templates_are_written_only_for_rows_labelled_for_every_task_their_check_asks():
    """A template of a reply row without a prompt or refusal label answers "None" there: R-SFT on such templates
    taught a model to answer prompt+response checks with ``Completion: None`` (docs/training.md)."""
    both = {"prompt_harm": "harmful", "refusal": "compliance", "response_harm": "harmful"}
    assert fully_labelled(Example("p", None, {"prompt_harm": "harmful"}))
    assert fully_labelled(Example("p", "r", both))
    assert not fully_labelled(Example("p", "r", {**both, "refusal": None}))
    assert not fully_labelled(Example("p", "r", {"response_harm": "harmful"}))
    assert not fully_labelled(Example("p", None, {}))


def test_a_failed_or_killed_rerun_never_leaves_a_done_stage_without_its_output(tmp_path, capsys, monkeypatch):
    from guardsdk_trainer.recipe import Recipe

    a, b = _two_stage_configs(tmp_path)
    assert main(["recipe", str(a)]) == 0
    sft = tmp_path / "run" / "data" / "sft.jsonl"
    assert sft.exists() and set(_on_disk(tmp_path)) == {"data", "synth"}
    # A rerun that invalidates data and synth, then fails with an error that is not the trainer's own.
    monkeypatch.setattr(Recipe, "stage_data", lambda self: (_ for _ in ()).throw(FileNotFoundError("gone")))
    assert main(["recipe", str(b)]) == 2
    assert _on_disk(tmp_path) == {} and not sft.exists()  # not "done" with its output gone
    monkeypatch.undo()
    # A kill while outputs are removed: the manifest on disk already forgot them.
    assert main(["recipe", str(a)]) == 0
    original = Recipe.clear

    def killed(self, stage):
        original(self, stage)
        if stage == "data":
            assert _on_disk(tmp_path) == {}  # written before any output went
            raise KeyboardInterrupt

    monkeypatch.setattr(Recipe, "clear", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["recipe", str(b)])
    monkeypatch.undo()
    assert _on_disk(tmp_path) == {}
    capsys.readouterr()
    assert main(["recipe", str(a)]) == 0 and sft.exists()
    # A stage whose recorded output is gone is not done: it reruns, and so does every stage after it.
    sft.unlink()
    assert main(["recipe", str(a)]) == 0 and sft.exists()
    assert "stage synth: its output data/sft.jsonl is missing; rerunning it" in capsys.readouterr().err


def test_a_missing_data_path_stops_before_anything_is_removed(tmp_path, capsys):
    a, _ = _two_stage_configs(tmp_path)
    assert main(["recipe", str(a)]) == 0
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "a.yaml").write_text(a.read_text(encoding="utf-8"), encoding="utf-8")  # pool.jsonl is not beside it
    capsys.readouterr()
    assert main(["recipe", str(moved / "a.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"guardsdk-train: data.pool[0]: no such file {moved / 'pool.jsonl'} " + (
        "(relative paths resolve against the config's folder)\n"
    )
    assert set(_on_disk(tmp_path)) == {"data", "synth"} and (tmp_path / "run" / "data" / "sft.jsonl").exists()


def test_recipe_force_stage_reruns_it_and_every_stage_after_it(tmp_path, capsys):
    a, _ = _two_stage_configs(tmp_path)
    assert main(["recipe", str(a)]) == 0
    before = _on_disk(tmp_path)
    capsys.readouterr()
    assert main(["recipe", str(a), "--force", "data"]) == 0
    err = capsys.readouterr().err
    after = _on_disk(tmp_path)
    assert "stage data: rerunning (--force) with every stage after it" in err
    assert all(after[s]["run"] != before[s]["run"] for s in ("data", "synth"))
    assert main(["recipe", str(a), "--force", "synth", "--force", "synth"]) == 0
    assert _on_disk(tmp_path)["data"]["run"] == after["data"]["run"] != _on_disk(tmp_path)["synth"]["run"]
    assert main(["recipe", str(a), "--force", "hsdp"]) == 2
    assert main(["recipe", str(a), "--force"]) == 2
    assert main(["data", str(a), "--force", "synth"]) == 2
    err = capsys.readouterr().err
    assert "--force hsdp: not a stage" in err and "recipe --force needs a STAGE" in err and "Traceback" not in err


def test_training_arguments_raise_no_deprecation_or_pin_memory_warning_and_the_bar_opens_named(tmp_path):
    import warnings
    from types import SimpleNamespace

    import torch

    from guardsdk_trainer.config import DPOStageConfig, SFTStageConfig
    from guardsdk_trainer.hsdpo import dpo_config
    from guardsdk_trainer.progress import StageProgressCallback, stage
    from guardsdk_trainer.rsft import sft_config

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sft = sft_config(tmp_path / "s", SFTStageConfig(bf16=False, gradient_checkpointing=False))
        dpo = dpo_config(tmp_path / "d", DPOStageConfig(bf16=False, gradient_checkpointing=True))
    assert sft.activation_checkpointing is False and dpo.activation_checkpointing is True
    assert sft.dataloader_pin_memory is dpo.dataloader_pin_memory is torch.cuda.is_available()
    callback = StageProgressCallback("rsft")
    with stage("rsft"):
        callback.on_train_begin(sft, SimpleNamespace(is_world_process_zero=True, max_steps=3), None)
    assert callback.training_bar.desc == "[rsft] training rsft"
    callback.training_bar.close()
