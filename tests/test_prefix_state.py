"""The shared instruction's KV state on disk: a new process restores it instead of evaluating it, and only
from a folder nobody else can write."""

from __future__ import annotations

import pytest

from guardsdk.backends.llamacpp import LlamaCppBackend
from guardsdk.detectors.generative import GenerativeDetector, shared_prefix
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.families import get_family
from guardsdk.families.guardreasoner.template import INSTRUCTION, build_input

PROMPT = build_input("How do I bake bread?")


def open_counting(folder) -> tuple[LlamaCppBackend, list[int]]:
    """A backend whose evaluated token counts are recorded."""
    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting=False, prefix_states=folder)
    evaluated: list[int] = []
    original = backend.llm.eval
    backend.llm.eval = lambda tokens: (evaluated.append(len(tokens)), original(tokens))[1]
    return backend, evaluated


def test_a_second_process_restores_the_instruction_instead_of_evaluating_it(tmp_path):
    folder = tmp_path / "states"
    first, evaluated = open_counting(folder)
    GenerativeDetector(first, "guardreasoner")  # warms: evaluates the instruction and saves its state
    assert sum(evaluated) >= len(first.tokenize(INSTRUCTION)) and len(list(folder.glob("*.state"))) == 1
    expected = first.generate([PROMPT], max_tokens=300)[0]
    first.close()

    second, evaluated = open_counting(folder)
    GenerativeDetector(second, "guardreasoner")
    assert evaluated == []  # restored from disk
    evaluated.clear()
    restored = second.generate([PROMPT], max_tokens=300)[0]
    assert restored.text == expected.text and restored.token_ids == expected.token_ids
    assert sum(evaluated) < len(second.input_ids(PROMPT)) - len(second.tokenize(INSTRUCTION)) + 5
    second.close()


def test_states_are_never_read_from_or_written_to_a_folder_others_can_write(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    backend, evaluated = open_counting(folder)
    backend.warm(shared_prefix(get_family("guardreasoner")))
    assert sum(evaluated) > 0 and list(folder.iterdir()) == []
    backend.close()


def test_a_damaged_state_file_is_evaluated_instead(tmp_path):
    folder = tmp_path / "states"
    first, _ = open_counting(folder)
    first.warm(shared_prefix(get_family("guardreasoner")))
    expected = first.generate([PROMPT], max_tokens=300)[0]
    first.close()
    [state] = folder.glob("*.state")
    state.write_bytes(state.read_bytes()[:100])
    second, evaluated = open_counting(folder)
    second.warm(shared_prefix(get_family("guardreasoner")))
    assert sum(evaluated) > 0  # not restored
    assert second.generate([PROMPT], max_tokens=300)[0].text == expected.text
    second.close()


@pytest.mark.parametrize("family", ["guardreasoner", "wildguard", "llamaguard3"])
def test_every_family_names_a_shared_prefix_that_its_prompt_checks_start_with(family):
    prefix = shared_prefix(get_family(family))
    assert len(prefix) > 50
    for prompt, response in (("x", None), ("hello there", "hi"), ("<|eot_id|>", None)):
        assert get_family(family).render(prompt, response)[0].startswith(prefix)
