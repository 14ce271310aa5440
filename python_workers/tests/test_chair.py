"""Object-HalBench: CHAIR_s and CHAIR_i against hand-computed cases, the caption word rules
(synonyms, two-word names, toilet seat), the ground truth from instances and captions, and
the files' checks (no model)."""

from __future__ import annotations

import base64
import json

import pytest

from pds_dpo_workers.benchmarks.object_halbench import Chair, Suite, chair_metrics, ground_truth
from pds_dpo_workers.benchmarks.words import caption_words, singular
from pds_dpo_workers.errors import InvalidRequest

SYNONYMS = """person, people, man, woman, child
dog, puppy, pup
cat, kitten
dining table, table
wine glass
hot dog
chair, seat
toilet
tie
car, automobile
"""


@pytest.fixture(scope="module")
def chair():
    return Chair(SYNONYMS)


@pytest.mark.parametrize(
    "word,single",
    [("dogs", "dog"), ("puppies", "puppy"), ("men", "man"), ("children", "child"), ("benches", "bench"), ("glasses", "glass"),
     ("buses", "bus"), ("knives", "knife"), ("skis", "ski"), ("people", "people"), ("grass", "grass"), ("tennis", "tennis"), ("is", "is"), ("ties", "tie")],
)
def test_singular(word, single):
    assert singular(word) == single


def test_caption_words_split_punctuation_and_clitics():
    assert caption_words("The men's dogs, two puppies.") == ["the", "man", "'s", "dog", ",", "two", "puppy", "."]


def test_mentions_map_synonyms_and_two_word_names(chair):
    found = chair.mentions("A man and two puppies at a dining table with a wine glass, a hot dog and a baby cat.")
    assert found == [("man", "person"), ("puppy", "dog"), ("dining table", "dining table"), ("wine glass", "wine glass"), ("hot dog", "hot dog"), ("cat", "cat")]
    # "hot dog" is no dog; "bow tie" is a tie; "seat" beside "toilet" is no chair.
    assert chair.mentions("a bow tie") == [("tie", "tie")]
    assert chair.mentions("A toilet with its seat up.") == [("toilet", "toilet")]
    assert chair.mentions("A seat by the table.") == [("seat", "chair"), ("table", "dining table")]
    assert chair.mentions("") == []


def test_chair_by_hand(chair):
    truth = [{"person", "dog"}, {"cat"}, {"car"}, {"person"}]
    captions = [
        "A man walks two dogs past a cat.",  # person, dog, cat -> cat hallucinated (1 of 3)
        "A kitten sleeps.",  # cat -> fine
        "An empty street.",  # no object words
        "People at a table with people and a puppy.",  # person, dining table, person, dog -> 2 of 4
    ]
    m = chair_metrics(captions, truth, chair)
    assert m["chair_s"] == pytest.approx(2 / 4)  # captions 1 and 4
    assert m["chair_i"] == pytest.approx(3 / 8)  # 1 + 2 hallucinated of 3 + 1 + 0 + 4 mentions
    assert m["object_recall"] == pytest.approx((2 + 1 + 0 + 1) / (2 + 1 + 1 + 1))
    assert (m["captions"], m["object_mentions"], m["hallucinated_mentions"]) == (4, 8, 3)
    assert chair_metrics([], [], chair)["chair_i"] == 0


def coco(**kw) -> bytes:
    return json.dumps(kw).encode()


INSTANCES = coco(
    images=[{"id": 1}, {"id": 2}],
    categories=[{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 62, "name": "chair"}],
    annotations=[{"image_id": 1, "category_id": 18}, {"image_id": 2, "category_id": 1}, {"image_id": 2, "category_id": 62}],
)
CAPTIONS = coco(annotations=[{"image_id": 1, "caption": "A woman and her pup."}, {"image_id": 3, "caption": "A cat."}])


def test_ground_truth_joins_instances_and_captions(chair):
    assert ground_truth({1, 2}, INSTANCES, CAPTIONS, chair) == {1: {"dog", "person"}, 2: {"person", "chair"}}


PNG = base64.b64encode(b"\x89PNG").decode()  # decoded only when answered
ROW = {"image_id": 1, "question": "Describe the image.", "image": PNG}
REFS = {"instances": INSTANCES, "captions": CAPTIONS, "synonyms": SYNONYMS.encode()}


def lines(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_the_suite_reads_rows_and_scores_answers():
    suite = Suite(lines(ROW, {"image_id": "2", "question": "What is this?", "image_path": "x.png", "question_id": "q"}), REFS)
    assert [(q.question_id, q.image) for q in suite.questions] == [("0", b"\x89PNG"), ("q", "x.png")]
    assert suite.parse(0, "A dog and a cat.") == "dog, cat"
    m = suite.metrics(["Assistant: A dog and a man.", "A man on a chair and a dog."])
    assert (m["chair_s"], m["chair_i"], m["empty_answers"]) == (0.5, 0.2, 0)


@pytest.mark.parametrize(
    "rows,refs,message",
    [
        ((ROW, "{oops"), {}, r"^Object-HalBench questions line 2: not JSON"),
        (({"question": "q", "image": PNG},), {}, r"^Object-HalBench questions line 1: missing field 'image_id'$"),
        (({**ROW, "image_id": "x1"},), {}, r"field 'image_id' must be a COCO image id"),
        (({**ROW, "question": 5},), {}, r"field 'question' must be a string, not 5$"),
        (({k: v for k, v in ROW.items() if k != "image"},), {}, r"missing field 'image' \(the image as base64\) or 'image_path'$"),
        (({**ROW, "image": "not base64!"},), {}, r"field 'image' is not base64"),
        (({**ROW, "image_id": 7},), {}, r"^instances file: no image with id 7"),
        ((ROW,), {"captions": None}, r"^object-halbench needs its 'captions' reference file"),
        ((ROW,), {"instances": b"[]"}, r"^instances file: not a JSON object"),
        ((ROW,), {"instances": coco(images=[{"id": 1}], categories=[{"id": 1, "name": "zebra"}], annotations=[])}, r"categories\[1\]: category 'zebra' is on no line of the synonyms file"),
        ((ROW,), {"instances": coco(images=[{"id": 1}], categories=[], annotations=[{"image_id": 1, "category_id": 4}])}, r"annotations\[1\]: category_id 4 is no category"),
        ((ROW,), {"instances": coco(images=[{"id": 1}], categories=[])}, r"^instances file: missing field 'annotations'$"),
        ((ROW,), {"captions": coco(annotations=[{"image_id": 1, "caption": None}])}, r"^captions file annotations\[1\]: field 'caption' must be a string"),
        ((ROW,), {"synonyms": b"\n\n"}, r"^synonyms file: no words"),
    ],
)
def test_bad_files_name_the_file_line_and_field(rows, refs, message):
    references = {**REFS, **refs}
    references = {k: v for k, v in references.items() if v is not None}
    with pytest.raises(InvalidRequest, match=message):
        Suite(lines(*rows), references)
