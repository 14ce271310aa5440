"""MMHal-Bench: the response template's checks, the image file named by image_src, the
answers' fields (no model)."""

from __future__ import annotations

import json

import pytest

from pds_dpo_workers.benchmarks.mmhal import Suite, image_name
from pds_dpo_workers.errors import InvalidRequest

RECORD = {
    "question_type": "attribute", "question_topic": "outdoor", "image_id": "df62a56fdc1bb12b",
    "image_src": "https://c4.staticflickr.com/8/7211/7206072054_c53d53b97d_o.jpg", "image_content": ["Fire hydrant"],
    "question": "What color is the fire hydrant cap in the picture?", "gt_answer": "It is yellow.", "model_answer": "",
}  # fmt: skip


def test_image_names_are_the_last_path_segment():
    assert image_name(RECORD["image_src"]) == "7206072054_c53d53b97d_o.jpg"
    assert image_name("https://x.invalid/a/b.jpg?size=large#top") == "b.jpg"
    assert image_name("images/c.png") == "c.png"


def test_questions_are_keyed_by_template_index_and_carry_the_record():
    suite = Suite(json.dumps([RECORD, {**RECORD, "question": "How many?"}]).encode(), {})
    q = suite.questions[1]
    assert (q.question_id, q.prompt, q.image) == ("1", "How many?", "7206072054_c53d53b97d_o.jpg")
    assert set(q.record) == set(RECORD) - {"model_answer"}
    assert suite.metrics(["Yellow.", " "]) == {"questions": 2, "empty_answers": 1}


@pytest.mark.parametrize(
    "records,message",
    [
        ({"a": 1}, r"^MMHal-Bench template: not a JSON list$"),
        ([RECORD, 3], r"^MMHal-Bench template row 2: not a JSON object$"),
        ([{k: v for k, v in RECORD.items() if k != "gt_answer"}], r"^MMHal-Bench template row 1: missing field 'gt_answer'$"),
        ([{**RECORD, "image_content": "Fire hydrant"}], r"^MMHal-Bench template row 1: field 'image_content' must be a list"),
        ([{**RECORD, "image_id": 5}], r"field 'image_id' must be a string, not 5$"),
        ([{**RECORD, "image_src": "https://x.invalid/"}], r"field 'image_src' names no file"),
        ([{**RECORD, "question": ""}], r"field 'question' is empty"),
        ([{**RECORD, "model_answer": None}], r"field 'model_answer' must be a string"),
    ],
)
def test_bad_templates_name_the_row_and_field(records, message):
    with pytest.raises(InvalidRequest, match=message):
        Suite(json.dumps(records).encode(), {})


def test_a_template_that_is_not_json():
    with pytest.raises(InvalidRequest, match=r"^MMHal-Bench template: not JSON \(line 2, column 1"):
        Suite(b"[\n}", {})
