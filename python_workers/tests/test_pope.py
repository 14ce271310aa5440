"""POPE answer parsing and metric math against hand-computed cases (no model)."""

import pytest

from pds_dpo_workers.pope import parse_yes_no, pope_metrics


@pytest.mark.parametrize(
    "answer,parsed",
    [
        ("Yes", "yes"),
        ("yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("There is no dog in the image.", "no"),
        ("I think so, yes", "yes"),
        ("Not really", "no"),
        ("", "unparseable"),
        ("A dog on a sofa", "unparseable"),
        ("Yes and no", "yes"),
        ("Maybe yes, maybe no", "unparseable"),
    ],
)
def test_parse_yes_no(answer, parsed):
    assert parse_yes_no(answer) == parsed


def test_metrics_by_hand():
    labels = ["yes", "yes", "yes", "no", "no", "no", "yes", "no"]
    preds = ["yes", "yes", "no", "no", "yes", "no", "unparseable", "unparseable"]
    m = pope_metrics(labels, preds)
    # TP=2, FN=2 (one "no", one unparseable), TN=2, FP=1; 2 unparseable of 8.
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["yes_ratio"] == pytest.approx(3 / 8)
    assert m["unparseable"] == 2
    assert m["unparseable_ratio"] == pytest.approx(0.25)


def test_metrics_all_unparseable_and_empty():
    m = pope_metrics(["yes", "no"], ["unparseable", "unparseable"])
    assert m["accuracy"] == 0 and m["precision"] == 0 and m["recall"] == 0 and m["f1"] == 0
    assert m["unparseable_ratio"] == 1
    assert pope_metrics([], [])["accuracy"] == 0
    with pytest.raises(ValueError):
        pope_metrics(["yes"], [])


def test_perfect_answers():
    m = pope_metrics(["yes", "no"], ["yes", "no"])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["yes_ratio"]) == (1, 1, 1, 1, 0.5)
