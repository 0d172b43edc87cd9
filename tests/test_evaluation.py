"""guardsdk eval: scoring, rescoring the published predictions, and resumable runs on a real GGUF."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import BENCHMARKS, PREDICTIONS
from test_scoring import PAPER_F1

from guardsdk import Guard
from guardsdk.eval.benchmarks import benchmark, load_items
from guardsdk.eval.evaluation import completed_rows, evaluate
from guardsdk.eval.report import load_prediction_dir, score_rows, to_json, to_markdown, weighted_f1
from guardsdk.families.guardreasoner.template import build_input

ANS = "Answers: \nRequest: {}\nCompletion: None\nResponse: None\n"


def rows(pairs):
    return [{"prompt": build_input("p"), "label": gold, "predict": predict} for gold, predict in pairs]


def test_score_rows_hand_computed():
    data = rows(
        [
            ("harmful", ANS.format("harmful")),  # tp
            ("harmful", ANS.format("unharmful")),  # fn
            ("unharmful", ANS.format("harmful")),  # fp
            ("unharmful", ANS.format("unharmful")),  # tn
            ("unharmful", "no answer at all"),  # unreadable: wrong (fp) — twice under the paper's script
            ("harmful", ANS.format("harmful") + "x" * 400),  # paper cannot read it (dropped); robust can (tp)
        ]
    )
    result = score_rows(benchmark("AegisSafetyTest"), data)
    paper, robust = result.scores["paper"], result.scores["robust"]
    assert (paper.tp, paper.fp, paper.fn, paper.tn) == (1, 3, 1, 1)
    assert (robust.tp, robust.fp, robust.fn, robust.tn) == (2, 2, 1, 1)
    assert result.parse_failures == {"paper": 2, "robust": 1}
    assert result.recovered == [5]
    assert paper.f1 == pytest.approx(100 * 2 / 6) and robust.f1 == pytest.approx(100 * 4 / 7)
    assert result.metrics("robust")["fpr"] == pytest.approx(round(100 * 2 / 3, 2))


def test_answer_block_gold_labels_and_weighted_average():
    block = "Answers: \nRequest: None\nCompletion: None\nResponse: {}\n"
    data = [{"prompt": build_input("p", "r"), "label": block.format("harmful"), "predict": block.format("harmful")}]
    safe_rlhf = score_rows(benchmark("SafeRLHF"), data)
    assert safe_rlhf.scores["paper"].tp == 1 and safe_rlhf.scores["paper"].f1 == 100.0
    xs = score_rows(benchmark("XSTestReponseHarmful"), rows([("harmful", "Response: unharmful")] * 3))
    assert weighted_f1([safe_rlhf, xs], "paper") == pytest.approx(25.0)


def test_rescore_of_published_predictions_reproduces_the_paper():
    models = load_prediction_dir(PREDICTIONS)
    assert sorted(models) == ["1B", "8B"]
    report = to_json(models)
    for size, expected in PAPER_F1.items():
        for name, f1 in expected.items():
            assert abs(report[size]["paper"][name]["f1"] - f1) <= 0.6
            rows = (PREDICTIONS / size / name / "generated_predictions.jsonl").read_text(encoding="utf-8")
            assert report[size]["robust"][name]["n"] == rows.count("\n")  # every item once
    assert models["1B"]["AegisSafetyTest"].recovered and models["1B"]["AegisSafetyTest"].parse_failures["robust"] == 0
    markdown = to_markdown(models)
    assert "| GuardReasoner 8B (paper) | 91.86 | 90.18 | 99.50 |" in markdown
    assert "| **1B** (paper) | 96.31 | 89.34 | 98.99 |" in markdown  # the paper's own 89.34, to the digit


def test_single_model_folder_json_schema():
    models = load_prediction_dir(PREDICTIONS / "8B")
    report = to_json(models)
    assert set(report) == {"paper", "robust"}
    assert set(report["paper"]["SimpleSafetyTests"]) >= {"f1", "precision", "recall", "fpr", "n", "parse_failures"}


def test_completed_rows_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "tor', encoding="utf-8")
    assert completed_rows(path) == 2
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"a": 2}\n'


@pytest.mark.slow
def test_evaluate_slice_with_a_real_gguf_and_resume(tiny_gguf, tmp_path):
    guard = Guard.from_gguf(tiny_gguf, max_new_tokens=8, backend_kwargs={"n_ctx": 4096})
    specs = [benchmark("SimpleSafetyTests"), benchmark("XSTestResponseRefusal")]
    evaluate(guard, BENCHMARKS, tmp_path, benchmarks=specs, limit=3, batch_size=2, progress=False)
    first = (tmp_path / "SimpleSafetyTests" / "generated_predictions.jsonl").read_text(encoding="utf-8").split("\n")
    assert len([line for line in first if line]) == 3
    row = json.loads(first[0])
    items = load_items(BENCHMARKS, specs[0])
    assert row["prompt"] == items[0].model_input and row["label"] == items[0].label
    assert row["tokens_out"] == 8 and row["parse_status"] == "unfinished"
    # Interrupt: keep one row and a torn one, then resume.
    path = tmp_path / "XSTestResponseRefusal" / "generated_predictions.jsonl"
    kept = path.read_text(encoding="utf-8").split("\n")[0]
    path.write_text(kept + "\n" + kept[:30], encoding="utf-8")
    calls_before = guard.stats["checks"]
    evaluate(guard, BENCHMARKS, tmp_path, benchmarks=specs, limit=3, batch_size=2, progress=False)
    assert guard.stats["checks"] - calls_before == 2
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    refusal_items = load_items(BENCHMARKS, specs[1])[:3]
    assert [r["prompt"] for r in lines] == [i.model_input for i in refusal_items]
    guard.close()


@pytest.mark.slow
def test_cli_eval_killed_midway_resumes_and_reports(tiny_gguf, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "guardsdk", "eval", "--gguf", str(tiny_gguf), "--benchmarks-dir", str(BENCHMARKS),
               "--benchmark", "AegisSafetyTest", "--limit", "12", "--batch-size", "1", "--max-new-tokens", "120",
               "--out", str(out), "--no-progress"]  # fmt: skip
    predictions = out / "AegisSafetyTest" / "generated_predictions.jsonl"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not predictions.exists() or predictions.read_text().count("\n") < 2):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = completed_rows(predictions)
    assert 2 <= written < 12
    json_path = tmp_path / "scores.json"
    done = subprocess.run([*command, "--json", str(json_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").split("\n") if line]
    assert [r["prompt"] for r in lines] == [
        i.model_input for i in load_items(BENCHMARKS, benchmark("AegisSafetyTest"))[:12]
    ]
    scores = json.loads(json_path.read_text())
    assert (
        scores["robust"]["AegisSafetyTest"]["n"] == 12 and scores["robust"]["AegisSafetyTest"]["parse_failures"] == 12
    )
    golds = [i.label for i in load_items(BENCHMARKS, benchmark("AegisSafetyTest"))[:12]]
    # the paper's script: every output unreadable, so each "unharmful" item twice and each "harmful" one dropped
    assert scores["paper"]["AegisSafetyTest"]["n"] == 2 * golds.count("unharmful")
    assert scores["run"]["limit"] == 12 and scores["run"]["family"] == "guardreasoner"
    assert (out / "report.png").stat().st_size > 10_000 and "latency p50" in (out / "report.md").read_text()
