"""Exact mode: drafts verified by the model itself. The draft policy as arithmetic, then the bundled
guardreasoner-tiny GGUF with and without drafting on the same benchmark prompts."""

from __future__ import annotations

import math
import time

import pytest
from conftest import BENCHMARKS

from guardsdk.backends import llamacpp
from guardsdk.backends.base import Generation
from guardsdk.backends.drafting import (
    DEFAULT_VERIFY_COSTS,
    EXACT_DRAFT,
    MAX_DRAFT,
    Drafter,
    PhraseTable,
    VerifyCosts,
    best_draft_length,
    prompt_lookup,
)
from guardsdk.backends.llamacpp import LlamaCppBackend, near_tie
from guardsdk.backends.llamacpp_build import batches_match_steps, logits_in_batches
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.eval.benchmarks import benchmark, load_items
from guardsdk.families.guardreasoner.template import build_input

MEASURED_1B = VerifyCosts({1: 1.0, 2: 1.6, 4: 2.4, 8: 5.2})  # the figures for the 1B shape here
FREE = VerifyCosts({1: 1.0, 2: 1.0, 4: 1.0, 8: 1.0})


def test_verify_costs_interpolate_between_and_extend_past_the_measured_sizes():
    assert MEASURED_1B.cost(3) == pytest.approx(2.0) and MEASURED_1B.cost(6) == pytest.approx(3.8)
    assert MEASURED_1B.cost(9) == pytest.approx(5.9)  # the 4 -> 8 slope
    with pytest.raises(ValueError, match="k=1"):
        VerifyCosts({2: 1.6})


def test_drafts_are_only_as_long_as_they_pay_for_their_verification():
    assert best_draft_length([0.99] * 8, FREE) == 8
    assert best_draft_length([0.5], MEASURED_1B) == 0  # 1.5 expected tokens for 1.6 steps: not worth it
    assert best_draft_length([0.7], MEASURED_1B) == 1  # 1.7 for 1.6
    assert best_draft_length([0.95] * 8, MEASURED_1B) == 3  # k=4 is the sweet spot of these costs
    assert best_draft_length([], MEASURED_1B) == 0


def test_the_phrase_table_predicts_what_followed_and_trusts_rare_runs_less():
    table = PhraseTable(order=2)
    table.learn([1, 2, 3, 4])
    drafts, chances = table.chain([9, 1, 2])
    assert drafts == [3, 4] and chances == [0.5, 0.5]  # each run seen once
    for _ in range(9):
        table.learn([1, 2, 3])
    assert table.chain([1, 2])[1][0] == pytest.approx(10 / 11)
    table.learn([1, 2, 5])
    assert table.chain([1, 2], limit=1) == ([3], [pytest.approx(10 / 12)])
    full = PhraseTable(order=1, max_contexts=1)
    full.learn([1, 2, 3])
    assert list(full.counts) == [(1,)]  # full: nothing new is added


def test_prompt_lookup_proposes_what_followed_the_last_occurrence():
    source = [5, 6, 7, 8, 1, 5, 6, 7, 9, 10]
    assert prompt_lookup([0, 5, 6, 7], source, limit=3) == [9, 10]
    assert prompt_lookup([4, 4, 4], source) == [] and prompt_lookup([5], source) == []


def test_the_drafter_learns_how_often_lookup_drafts_are_accepted():
    drafter = Drafter(MEASURED_1B)
    before = drafter.lookup_acceptance
    drafter.observe(4, 0, from_lookup=True)
    assert drafter.lookup_acceptance < before and (drafter.proposed, drafter.accepted) == (4, 0)


def test_a_near_tie_is_a_watched_word_chosen_by_less_than_the_margin():
    def chosen_at_step_1(watched: dict) -> Generation:
        return Generation("", 0, 2, "stop", (5, 7), watched=watched)

    assert near_tie(chosen_at_step_1({1: {7: -0.70, 8: -0.69}}), 0.1)  # batched logits chose the less likely
    assert near_tie(chosen_at_step_1({1: {7: -0.65, 8: -0.74}}), 0.1)
    assert not near_tie(chosen_at_step_1({1: {7: -0.1, 8: -2.4}}), 0.1)
    assert not near_tie(chosen_at_step_1({1: {7: -0.1}}), 0.1)  # no other watched word to tie with
    assert not near_tie(chosen_at_step_1({4: {7: -0.7, 8: -0.7}}), 0.1)  # a step past the output
    assert not near_tie(Generation("", 0, 0, "error"), 0.1)


# -- on the bundled model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs():
    items = load_items(BENCHMARKS, benchmark("ToxicChat"), sample=12) + load_items(
        BENCHMARKS, benchmark("XSTestResponseRefusal"), sample=4
    )
    return [build_input(item.prompt, item.response) for item in items]


@pytest.fixture(scope="module")
def plain(bundled_plain):
    return bundled_plain


@pytest.fixture(scope="module")
def drafting():
    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting=FREE)  # drafts wherever there are any
    yield backend
    backend.close()


def test_drafted_outputs_are_the_plain_greedy_outputs(plain, drafting, inputs):
    drafting.generate(inputs[:4], max_tokens=1024)  # the drafter learns from these
    expected = [g.text for g in plain.generate(inputs[4:], max_tokens=1024)]
    drafted = [g.text for g in drafting.generate(inputs[4:], max_tokens=1024)]
    assert drafted == expected  # verify batches of <= 3 tokens: the one-token steps' logits, so the same text
    assert drafting.drafter.accepted > 0.25 * drafting.drafter.proposed > 0  # free verification: longest drafts


def test_drafting_keeps_token_limits_stop_strings_and_deadlines(plain, drafting, inputs):
    [limited] = drafting.generate(inputs[:1], max_tokens=7)
    assert (limited.completion_tokens, limited.finish_reason) == (7, "length")
    assert limited.token_ids == plain.generate(inputs[:1], max_tokens=7)[0].token_ids
    [stopped] = drafting.generate(inputs[:1], max_tokens=1024, stop=["# Task 2"])
    assert stopped.finish_reason == "stop" and "# Task 2" not in stopped.text and stopped.text
    started = time.monotonic()
    [late] = drafting.generate(inputs[:1], max_tokens=1024, timeout_s=0.02)
    assert late.finish_reason == "timeout" and time.monotonic() - started < 1.0


def test_a_plain_run_after_a_drafted_one_reuses_a_correct_cache(plain, drafting, inputs):
    before = drafting.generate(inputs[5:6], max_tokens=1024)[0]
    drafting.generate(inputs[6:7], max_tokens=1024)
    again = drafting.generate(inputs[5:6], max_tokens=1024)[0]
    assert before.text == again.text


def test_measured_verify_costs_start_at_one_step():
    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting="measure")
    try:
        costs = backend.drafter.costs
        assert costs.ratios[1] == 1.0 and set(costs.ratios) == {1, 2, 4, 8} and costs.step_s > 0
    finally:
        backend.close()


def test_drafting_is_on_by_default_and_checked():
    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=1)
    try:
        assert backend.drafter is not None and backend.drafter.costs == DEFAULT_VERIFY_COSTS
    finally:
        backend.close()
    with pytest.raises(ValueError, match="drafting is"):
        LlamaCppBackend(bundled_tiny_path(), drafting="fast")


def test_outputs_redecoded_at_near_ties_are_the_plain_greedy_outputs(monkeypatch, inputs):
    """Every label word counted as a near-tie: exact mode then hands back what one-token steps write from the
    same cached point, text for text, as a plain backend with the same history (long drafts, as on a build whose
    batches move logits)."""
    monkeypatch.setattr(llamacpp, "REDECODE_MARGIN", math.inf)
    outputs = []
    for drafting in (False, FREE):
        backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting=drafting, prefix_states=None)
        backend.redecode_near_ties = True  # as on a build whose batches move logits
        if backend.drafter is not None:
            backend.drafter.max_draft = MAX_DRAFT
        try:
            detector = GenerativeDetector(backend, "guardreasoner")  # warms the shared instruction, as a guard does
            outputs.append(backend.generate(inputs[:8], max_tokens=1024, **detector._watch))
            redecoded = backend.redecoded
        finally:
            backend.close()
    plain, exact = outputs
    assert [g.text for g in exact] == [g.text for g in plain]
    assert redecoded == sum(bool(g.watched) for g in plain) > 0


def test_this_llama_cpp_build_evaluates_exact_modes_batches_as_one_token_steps(inputs):
    """What makes exact mode exact: the set-up's llama.cpp (no llamafile kernels) gives each token of a batch of
    up to EXACT_DRAFT + 1 the logits of a one-token step, bit for bit."""
    import numpy as np

    backend = LlamaCppBackend(bundled_tiny_path(), n_threads=2, drafting=False, prefix_states=None)
    try:
        assert batches_match_steps(backend._llama_cpp) and not backend.redecode_near_ties
        [output] = backend.generate(inputs[:1], max_tokens=96)
        ids, tokens = backend.input_ids(inputs[0]), list(output.token_ids)
        steps, batches = (logits_in_batches(backend, ids, tokens, size) for size in (1, EXACT_DRAFT + 1))
        [again] = backend.generate(inputs[:1], max_tokens=96)  # the cleared cache is evaluated anew
    finally:
        backend.close()
    assert len(steps) == len(tokens) > 20 and again.token_ids == output.token_ids
    assert all(np.array_equal(a, b) for a, b in zip(steps, batches, strict=True))
