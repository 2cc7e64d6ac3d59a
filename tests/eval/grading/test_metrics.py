"""pass@k, pass@1 with its standard error, maj@k and response metrics."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from memento.eval import accuracy_summary, maj_at_k, pass_at_1, pass_at_k, response_summary, well_formed
from memento.eval.grading.metrics import default_ks, majority_correct, mean_pass_at_k
from memento.format import load_traces

TRACES = Path(__file__).resolve().parents[3] / "examples" / "traces"


def test_pass_at_k_equals_the_closed_form_on_a_grid():
    checked = 0
    for n in range(1, 41):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed, rel=1e-12, abs=1e-12)
                checked += 1
    assert checked == sum((n + 1) * n for n in range(1, 41))


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    value = pass_at_k(2000, 3, 1000)  # C(2000, 1000) ~ 1e600
    assert value == pytest.approx(1 - math.comb(1997, 1000) / math.comb(2000, 1000), rel=1e-12)
    assert pass_at_k(64, 0, 64) == 0.0 and pass_at_k(64, 1, 64) == 1.0 and pass_at_k(64, 64, 1) == 1.0
    assert pass_at_k(64, 16, 1) == pytest.approx(0.25)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="need 0 <= c <= n and 1 <= k <= n"):
        pass_at_k(n, c, k)


def test_pass_at_1_mean_and_standard_error_over_problems():
    correct = [[True, True, False, False], [True, True, True, True], [False, False, False, True]]
    mean, stderr = pass_at_1(correct)
    means = [0.5, 1.0, 0.25]
    assert mean == pytest.approx(statistics.fmean(means))
    assert stderr == pytest.approx(statistics.stdev(means) / math.sqrt(3))
    assert pass_at_1([[True, False]]) == (0.5, 0.0)
    assert mean_pass_at_k(correct, 2) == pytest.approx((pass_at_k(4, 2, 2) + 1.0 + pass_at_k(4, 1, 2)) / 3)


def test_maj_at_k_on_hand_made_cases():
    # classes: the answer each sample gave (None = no answer); correct: each sample's verdict
    assert majority_correct([0, 1, 1], [True, False, False], 3) is False  # two wrong votes beat one right
    assert majority_correct([0, 1, 1], [True, False, False], 1) is True  # maj@1 is the first sample
    assert majority_correct([0, 1, 1, 0], [True, False, False, True], 4) is True  # tie: first voted wins
    assert majority_correct([1, 0, 0, 1], [False, True, True, False], 4) is False
    assert majority_correct([None, None, 2], [False, False, True], 3) is True  # no-answers do not vote
    assert majority_correct([None, None], [False, False], 2) is False
    classes = [[0, 1, 1], [0, 0, 1], [None, 3, 3]]
    correct = [[True, False, False], [True, True, False], [False, True, True]]
    assert maj_at_k(classes, correct, 3) == pytest.approx(2 / 3)
    assert maj_at_k(classes, correct, 1) == pytest.approx(2 / 3)  # problem 3's first sample has no answer
    with pytest.raises(ValueError, match=r"k must be 1\.\.3"):
        majority_correct([0, 1, 1], [True, False, False], 4)


def test_accuracy_summary_has_the_report_shape():
    correct = [[True, False, True, True], [False, False, False, True]]
    classes = [[0, 1, 0, 0], [0, 0, 1, 2]]
    summary = accuracy_summary(correct, classes)
    assert default_ks(4) == [1, 2, 4] and default_ks(6) == [1, 2, 4, 6] and default_ks(1) == [1]
    assert set(summary) == {"pass_at_1", "pass_at_1_stderr", "pass_at_k", "maj_at_k"}
    assert summary["pass_at_1"] == pytest.approx(0.5)
    assert summary["pass_at_k"] == {"1": 0.5, "2": pytest.approx((1 + 0.5) / 2), "4": 1.0}
    assert summary["maj_at_k"] == {"1": 0.5, "2": 0.5, "4": 0.5}


def test_format_adherence_on_the_authors_traces_and_broken_ones():
    texts = [trace.render() for path in sorted(TRACES.glob("memento_trace_*.json")) for _, trace in load_traces(path)]
    assert len(texts) == 3 and all(well_formed(text) for text in texts)
    first = texts[0]
    cut_off = first[: first.index("</think>")]
    no_blocks = "<think>\nplain reasoning\n</think>\n\n42"
    unbalanced = first.replace("<|summary_end|>", "", 1)
    assert not well_formed(cut_off) and not well_formed(no_blocks) and not well_formed(unbalanced)
    assert well_formed(first + "<|im_end|>")
    summary = response_summary([*texts, cut_off], tokens=[100, 200, 300, 400], answered=[True, True, True, False])
    assert summary["format_ok"] == pytest.approx(0.75)
    assert summary["tokens_mean"] == 250 and summary["answered"] == 0.75
    assert summary["blocks_mean"] == pytest.approx(
        statistics.fmean(t.count("<|block_end|>") for t in [*texts, cut_off])
    )
    assert summary["blocks_mean"] > 1 and summary["mementos_mean"] > 1
    with pytest.raises(ValueError, match="4 responses but 3 tokens"):
        response_summary([*texts, cut_off], tokens=[1, 2, 3])
