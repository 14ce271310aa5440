"""POPE: LLaVA's answer reading and the metric math against hand-computed cases; the
question file's checks (no model)."""

import json

import pytest

from pds_dpo_workers.benchmarks.pope import SUFFIX, Suite, parse_answer, pope_metrics
from pds_dpo_workers.errors import InvalidRequest


@pytest.mark.parametrize(
    "answer,parsed",
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("no", "no"),
        ("No.", "no"),
        ("There is no dog in the image.", "no"),
        ("The dog is not there", "no"),
        # Only the first sentence counts: the "no" after the first '.' is never read.
        ("Yes. There is no cat.", "yes"),
        # Commas are dropped before the split, so "No," reads as "No".
        ("No, there is none", "no"),
        # The split is on spaces and case-sensitive: "NO", "Not", "nope" and "no!" are no "no".
        ("NO", "yes"),
        ("Not really", "yes"),
        ("nope", "yes"),
        ("no!", "yes"),
        # An empty or unrelated answer is "yes", as in eval_pope.py.
        ("", "yes"),
        ("A dog on a sofa", "yes"),
        ("I'm\nno", "yes"),
    ],
)
def test_answers_are_read_as_llava_reads_them(answer, parsed):
    assert parse_answer(answer) == parsed


def test_metrics_by_hand():
    labels = ["yes", "yes", "yes", "no", "no", "no", "yes", "no"]
    answers = ["Yes", "yes, a dog", "No", "no", "Yes", "not at all", "", "There is no cat."]
    m = pope_metrics(labels, answers)
    # Predictions: yes yes no no yes no yes(empty) no -> TP=3, FN=1, TN=3, FP=1.
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["yes_ratio"] == pytest.approx(4 / 8)
    assert m["empty_answers"] == 1 and m["questions"] == 8


def test_no_yes_predicted_gives_zero_precision_not_a_division_error():
    m = pope_metrics(["yes", "no"], ["no", "no"])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["yes_ratio"]) == (0.5, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        pope_metrics(["yes"], [])


def test_perfect_answers():
    m = pope_metrics(["yes", "no"], ["Yes", "No"])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["yes_ratio"]) == (1, 1, 1, 1, 0.5)


def _file(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


ROW = {"question_id": 1, "image": "a.png", "text": "Is there a dog in the image?", "label": "yes"}


def test_questions_get_llavas_suffix_and_keep_their_fields():
    suite = Suite(_file(ROW, "", {**ROW, "question_id": "q2", "label": "no"}), {})
    assert [q.question_id for q in suite.questions] == ["1", "q2"]
    assert suite.questions[0].prompt == "Is there a dog in the image?" + SUFFIX
    assert SUFFIX == "\nAnswer the question using a single word or phrase."
    assert suite.questions[1].record == {"image": "a.png", "text": ROW["text"], "label": "no"}
    assert suite.metrics(["Yes", "No"])["accuracy"] == 1


@pytest.mark.parametrize(
    "rows,message",
    [
        ((ROW, "{not json"), r"^POPE questions line 2: not JSON"),
        (("[1, 2]",), r"^POPE questions line 1: not a JSON object$"),
        (({k: v for k, v in ROW.items() if k != "label"},), r"^POPE questions line 1: missing field 'label'$"),
        (({**ROW, "image": 3},), r"^POPE questions line 1: field 'image' must be a string, not 3$"),
        (({**ROW, "question_id": True},), r"field 'question_id' must be an integer or a string"),
        (({**ROW, "label": "Yes"},), r"^POPE questions line 1: field 'label' must be \"yes\" or \"no\", not 'Yes'$"),
        (({**ROW, "text": ""},), r"field 'text' is empty"),
        ((ROW, ROW), r"^POPE questions line 2: question_id 1 repeats"),
        (("",), r"^POPE questions: no questions$"),
    ],
)
def test_bad_question_files_name_the_line_and_field(rows, message):
    with pytest.raises(InvalidRequest, match=message):
        Suite(_file(*rows), {})


def test_a_file_that_is_not_utf8():
    with pytest.raises(InvalidRequest, match=r"^POPE questions: not UTF-8 \(byte 0\)$"):
        Suite(b"\xff\n", {})
