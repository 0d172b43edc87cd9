"""Every example script runs offline and shows what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("decorator_app.py", ["harmful: Sorry, I can't help with that.", "raised : GuardBlocked", "annotate:"]),
        ("langchain_chain.py", ["[guardsdk_verdict] allowed=True", "blocked: unsafe: prompt_harm"]),
        ("openai_client.py", ["chat   : ChatCompletion ['safe', 'safe']", "blocked: unsafe: prompt_harm"]),
        (
            "quickstart.py",
            [
                "[prompt check: BLOCKED]",
                "[response check: ANNOTATED]",
                "classifier model guard-classifier-minilm",
                "no reasoning was run",
                "reasoning (prompt_harm)",
                "guardreasoner model guardreasoner-tiny-Q8_0.gguf",
                "app : Sorry, I can't help with that.",
            ],
        ),
    ],
)
def test_example_runs(script, expected):
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for text in expected:
        assert text in result.stdout
