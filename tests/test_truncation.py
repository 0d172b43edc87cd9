"""Fitting long inputs into the token budget, measured with the real Llama 3 tokenizer."""

from __future__ import annotations

import pytest

from guardsdk.detectors.truncation import fit_to_budget, split_budget
from guardsdk.families.guardreasoner.template import build_input


class Llama3Codec:
    """The Llama 3 tokenizer behind the tokenize/detokenize interface of a backend."""

    def __init__(self) -> None:
        from guardsdk.tools.tiny_model import llama3_tokenizer

        self.tokenizer = llama3_tokenizer()

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def detokenize(self, ids) -> str:
        return self.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module")
def codec():
    return Llama3Codec()


def test_short_inputs_are_untouched(codec):
    fitted = fit_to_budget("hello", "world", 2048, codec)
    assert (fitted.prompt, fitted.response, fitted.truncated) == ("hello", "world", False)


def test_long_prompt_keeps_head_and_tail_and_fits(codec):
    prompt = "BEGIN " + " ".join(f"w{i}" for i in range(5000)) + " END"
    fitted = fit_to_budget(prompt, None, 1024, codec)
    assert fitted.truncated and fitted.prompt.startswith("BEGIN w0") and fitted.prompt.endswith("w4999 END")
    assert "tokens elided by guardsdk" in fitted.prompt
    assert len(codec.tokenize(build_input(fitted.prompt))) <= 1024


def test_long_response_gets_the_prompts_spare_budget(codec):
    response = "START " + "lorem ipsum " * 3000 + "STOP"
    fitted = fit_to_budget("short question?", response, 2048, codec)
    assert (
        fitted.prompt == "short question?" and fitted.response.startswith("START") and fitted.response.endswith("STOP")
    )
    total = len(codec.tokenize(build_input(fitted.prompt, fitted.response)))
    assert 2048 - 40 <= total <= 2048


def test_both_long_are_cut_to_half_each(codec):
    fitted = fit_to_budget("a " * 4000, "b " * 4000, 2048, codec)
    assert "elided" in fitted.prompt and "elided" in fitted.response
    assert len(codec.tokenize(build_input(fitted.prompt, fitted.response))) <= 2048


def test_split_budget():
    assert split_budget(100, None, 1000) == (1000, 0)
    assert split_budget(100, 5000, 1000) == (100, 900)
    assert split_budget(5000, 100, 1000) == (900, 100)
    assert split_budget(5000, 5000, 1000) == (500, 500)


def test_a_budget_too_small_for_the_template_is_an_error(codec):
    with pytest.raises(ValueError, match="no room"):
        fit_to_budget("x", None, 120, codec)
