"""AMBER: CHAIR, Cover, Hal, Cog and the discriminative metrics against hand-computed cases,
and the files' checks (no model)."""

from __future__ import annotations

import json

import pytest

from pds_dpo_workers.benchmarks.amber import Suite, Vocabulary, discriminative_metrics, generative_counts, generative_metrics, parse_yes_no
from pds_dpo_workers.errors import InvalidRequest

RELATION = {"dog": [], "grass": ["ground"], "person": ["man", "woman"], "cat": [], "ball": [], "tree": ["forest"], "car": ["vehicle"], "light": []}
VOCAB = Vocabulary(RELATION, ["light"])


def test_generative_by_hand():
    a = generative_counts(
        "A man and a dog on the ground near a cat under the light, beside a car and a table.",
        truth=["dog", "grass", "person"],
        hallu=["cat", "ball"],
        vocab=VOCAB,
    )
    # Vocabulary words: man, dog, ground, cat, light, car ("table" is none). light is safe;
    # man (person), dog and ground (grass) cover all three truths; cat is a hallu object
    # named (Cog) and hallucinated; car is hallucinated.
    assert a == {"words": 6, "hallucinated": 2, "covered": 3, "truth": 3, "named": 1, "hallu": 2}
    # A repeated truth object is covered once, as AMBER marks the first match only.
    b = generative_counts("Trees.", truth=["tree", "tree"], hallu=["car"], vocab=VOCAB)
    assert b == {"words": 1, "hallucinated": 0, "covered": 1, "truth": 2, "named": 0, "hallu": 1}
    m = generative_metrics([a, b])
    assert m["chair"] == pytest.approx(2 / 7)
    assert m["cover"] == pytest.approx(4 / 5)
    assert m["hal"] == pytest.approx(1 / 2)
    assert m["cog"] == pytest.approx(1 / 3)
    assert m["generative_responses"] == 2


@pytest.mark.parametrize("answer,parsed", [("Yes", "yes"), ("no.", "no"), ("No, it is not.", "no"), ("YES there is", "yes"), ("", "other"), ("There is no cat", "other")])
def test_yes_no(answer, parsed):
    assert parse_yes_no(answer) == parsed


def test_discriminative_by_hand():
    types = ["discriminative-hallucination", "discriminative-hallucination", "discriminative-attribute-state", "discriminative-attribute-number", "relation"]
    labels = ["no", "yes", "no", "yes", "no"]
    preds = ["no", "no", "yes", "yes", "other"]
    m = discriminative_metrics(types, labels, preds)
    # "no" is positive: TP 1, FP 1, FN 2 (one answered yes, one neither), TN 1.
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert (m["existence_accuracy"], m["existence_precision"], m["existence_recall"]) == (0.5, 0.5, 1.0)
    assert m["existence_f1"] == pytest.approx(2 / 3)
    assert (m["attribute_accuracy"], m["attribute_precision"], m["attribute_recall"]) == (0.5, 0.0, 0.0)
    assert (m["state_accuracy"], m["number_accuracy"], m["relation_accuracy"]) == (0.0, 1.0, 0.0)
    assert "action_accuracy" not in m
    assert m["discriminative_questions"] == 5


QUERIES = [{"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."}, {"id": 2, "image": "AMBER_1.jpg", "query": "Is there a cat in this image?"}]
ANNOTATIONS = [{"id": 1, "type": "generative", "truth": ["dog", "grass"], "hallu": ["cat"]}, {"id": 2, "type": "discriminative-hallucination", "truth": "no"}]


def refs(annotations=ANNOTATIONS, relation=RELATION, safe="light\n") -> dict[str, bytes]:
    out = {"annotations": json.dumps(annotations).encode()}
    if relation is not None:
        out["relation"] = json.dumps(relation).encode()
    if safe is not None:
        out["safe_words"] = safe.encode()
    return out


def test_the_suite_scores_both_tasks():
    suite = Suite(json.dumps(QUERIES, indent=4).encode(), refs())
    assert [(q.question_id, q.prompt, q.image) for q in suite.questions] == [("1", "Describe this image.", "AMBER_1.jpg"), ("2", "Is there a cat in this image?", "AMBER_1.jpg")]
    answers = ["A dog on the grass with a cat.", "No"]
    assert [suite.parse(k, a) for k, a in enumerate(answers)] == ["dog, grass, cat", "no"]
    m = suite.metrics(answers)
    assert (m["chair"], m["cover"], m["hal"], m["cog"], m["accuracy"], m["questions"]) == (pytest.approx(1 / 3), 1.0, 1.0, 1.0, 1.0, 2)


def test_a_discriminative_query_file_needs_no_relation_or_safe_words():
    suite = Suite(json.dumps(QUERIES[1:]).encode(), refs(relation=None, safe=None))
    m = suite.metrics(["Yes"])
    assert m["accuracy"] == 0 and "chair" not in m


@pytest.mark.parametrize(
    "queries,references,message",
    [
        (b"[{", refs(), r"^AMBER queries: not JSON \(line 1"),
        (json.dumps({"id": 1}).encode(), refs(), r"^AMBER queries: not a JSON list$"),
        (json.dumps([{"image": "a.jpg", "query": "q"}]).encode(), refs(), r"^AMBER queries row 1: missing field 'id'$"),
        (json.dumps([{"id": "1", "image": "a.jpg", "query": "q"}]).encode(), refs(), r"^AMBER queries row 1: field 'id' must be an integer"),
        (json.dumps([{"id": 9, "image": "a.jpg", "query": "q"}]).encode(), refs(), r"^AMBER queries row 1: id 9 has no entry in the annotations file$"),
        (json.dumps(QUERIES).encode(), {k: v for k, v in refs().items() if k != "annotations"}, r"^amber needs its 'annotations' reference file"),
        (json.dumps(QUERIES).encode(), refs(relation=None), r"^amber needs its 'relation' reference file"),
        (json.dumps(QUERIES).encode(), refs(annotations=[{"id": 1, "type": "caption", "truth": []}]), r"^annotations file row 1: field 'type' must be one of generative"),
        (json.dumps(QUERIES).encode(), refs(annotations=[{"id": 2, "type": "relation", "truth": "maybe"}]), r"^annotations file row 1: field 'truth' must be \"yes\" or \"no\""),
        (json.dumps(QUERIES).encode(), refs(annotations=[{"id": 1, "type": "generative", "truth": "dog", "hallu": []}]), r"^annotations file row 1: field 'truth' must be a list"),
        (json.dumps(QUERIES).encode(), refs(annotations=[{"id": 1, "type": "generative", "truth": ["dog", 3], "hallu": []}]), r"field 'truth' item 2 must be a string"),
        (json.dumps(QUERIES).encode(), refs(annotations=[ANNOTATIONS[0], ANNOTATIONS[0]]), r"^annotations file row 2: id 1 repeats"),
        (json.dumps(QUERIES).encode(), refs(annotations=[{**ANNOTATIONS[0], "truth": ["unicorn"]}, ANNOTATIONS[1]]), r"^annotations file id 1: truth word 'unicorn' is no key of the relation file$"),
        (json.dumps(QUERIES).encode(), refs(relation=["dog"]), r"^relation file: not a JSON object"),
        (json.dumps(QUERIES).encode(), refs(relation={"dog": "cat"}), r"^relation file: field 'dog' must be a list"),
    ],
)
def test_bad_files_name_the_file_row_and_field(queries, references, message):
    with pytest.raises(InvalidRequest, match=message):
        Suite(queries, references)
