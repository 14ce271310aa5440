"""Object-HalBench: captions of COCO images scored with CHAIR (CHAIR_s, CHAIR_i).

Questions are RLHF-V's eval/data/obj_halbench_300_with_image.jsonl: one JSON object a line,
{image_id: COCO image id, question: a caption prompt, image: the image as base64}; a row may
give image_path (relative to the image directory) instead of image, as RLAIF-V's readers
allow. The prompt is the question as it stands.

CHAIR is the standard algorithm (LisaAnne/Hallucination chair.py, as RLHF-V's
eval_gpt_obj_halbench.py runs it without GPT): a caption's words are lower-cased, tokenized
and singularized, COCO's two-word names joined ("dining table", "baby dog" -> "dog", ...),
"seat" dropped beside "toilet", and every word on the synonym list mapped to its COCO
object. An image's ground-truth objects come from the instances file (its boxes' categories)
and from the captions file (the objects its reference captions mention). A mentioned object
outside the ground truth is hallucinated: CHAIR_i is hallucinated mentions over all object
mentions, CHAIR_s the share of captions with at least one; object_recall is the share of
ground-truth objects a caption names correctly. Departures: words.py's tokenizer and
singularizer stand in for NLTK and WordNet; RLHF-V's optional GPT object extraction is not
run; one instances and one captions file are read (RLHF-V joins train2014 and val2014).
"""

from __future__ import annotations

import base64
import binascii

from pds_dpo_workers.benchmarks.files import Question, json_document, json_lines, need, ratio, reference
from pds_dpo_workers.benchmarks.words import caption_words
from pds_dpo_workers.errors import InvalidRequest

NAME = "Object-HalBench questions"
ROLES = ("instances", "captions", "synonyms")

ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLES = ("jet", "train")


class Chair:
    """The synonym list and the two-word names derived from it (CHAIR's __init__)."""

    def __init__(self, synonyms: str) -> None:
        self.object_of: dict[str, str] = {}  # every word on the list -> its COCO object (the line's first)
        for line in synonyms.splitlines():
            names = [s.strip() for s in line.strip().split(", ") if s.strip()]
            for name in names:
                self.object_of[name] = names[0]
        doubles = [w for w in self.object_of if len(w.split(" ")) >= 2] + ["home plate", "train track"]
        self.doubles = {w: w for w in doubles}
        for a in ANIMALS:
            self.doubles[f"baby {a}"] = a
            self.doubles[f"adult {a}"] = a
        for v in VEHICLES:
            self.doubles[f"passenger {v}"] = v
        self.doubles.update({"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"})

    def mentions(self, caption: str) -> list[tuple[str, str]]:
        """(word, COCO object) for each object word of the caption, in order."""
        words = caption_words(caption)
        joined, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in self.doubles:
                joined.append(self.doubles[pair])
                i += 2
            else:
                joined.append(words[i])
                i += 1
        if "toilet" in joined and "seat" in joined:
            joined = [w for w in joined if w != "seat"]
        return [(w, self.object_of[w]) for w in joined if w in self.object_of]


def chair_metrics(captions: list[str], truth: list[set[str]], chair: Chair) -> dict[str, float]:
    """CHAIR over captions, each with its image's ground-truth objects."""
    hallucinated_caps = mentioned = hallucinated = correct_objects = truth_objects = 0
    for caption, objects in zip(captions, truth, strict=True):
        found = chair.mentions(caption)
        wrong = [obj for _, obj in found if obj not in objects]
        mentioned += len(found)
        hallucinated += len(wrong)
        hallucinated_caps += bool(wrong)
        correct_objects += len({obj for _, obj in found if obj in objects})
        truth_objects += len(objects)
    return {
        "chair_s": ratio(hallucinated_caps, len(captions)),
        "chair_i": ratio(hallucinated, mentioned),
        "object_recall": ratio(correct_objects, truth_objects),
        "captions": float(len(captions)),
        "object_mentions": float(mentioned),
        "hallucinated_mentions": float(hallucinated),
    }


def _image_id(value, where: str) -> int:
    # RLHF-V reads it with int(): an integer, or its decimal string.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InvalidRequest(f"{where}: field 'image_id' must be a COCO image id (an integer), not {value!r}")


def ground_truth(image_ids: set[int], instances: bytes, captions: bytes, chair: Chair) -> dict[int, set[str]]:
    """Each image's COCO objects: its instance boxes' categories and its reference captions' objects."""
    truth: dict[int, set[str]] = {i: set() for i in image_ids}
    inst = json_document(instances, "instances file")
    if not isinstance(inst, dict):
        raise InvalidRequest("instances file: not a JSON object (COCO instances_*.json)")
    names: dict[int, str] = {}
    for i, cat in enumerate(need(inst, "categories", list, "instances file"), 1):
        where = f"instances file categories[{i}]"
        if not isinstance(cat, dict):
            raise InvalidRequest(f"{where}: not a JSON object")
        name = need(cat, "name", str, where)
        if name not in chair.object_of:
            raise InvalidRequest(f"{where}: category {name!r} is on no line of the synonyms file")
        names[need(cat, "id", int, where)] = name
    known: set[int] = set()
    for i, img in enumerate(need(inst, "images", list, "instances file"), 1):
        if not isinstance(img, dict):
            raise InvalidRequest(f"instances file images[{i}]: not a JSON object")
        known.add(need(img, "id", int, f"instances file images[{i}]"))
    missing = sorted(image_ids - known)
    if missing:
        raise InvalidRequest(f"instances file: no image with id {missing[0]} (named by the questions{f', and {len(missing) - 1} more' if len(missing) > 1 else ''})")
    for i, ann in enumerate(need(inst, "annotations", list, "instances file"), 1):
        where = f"instances file annotations[{i}]"
        if not isinstance(ann, dict):
            raise InvalidRequest(f"{where}: not a JSON object")
        image = need(ann, "image_id", int, where)
        category = need(ann, "category_id", int, where)
        if category not in names:
            raise InvalidRequest(f"{where}: category_id {category} is no category of the file")
        if image in truth:
            truth[image].add(chair.object_of[names[category]])
    caps = json_document(captions, "captions file")
    if not isinstance(caps, dict):
        raise InvalidRequest("captions file: not a JSON object (COCO captions_*.json)")
    for i, ann in enumerate(need(caps, "annotations", list, "captions file"), 1):
        where = f"captions file annotations[{i}]"
        if not isinstance(ann, dict):
            raise InvalidRequest(f"{where}: not a JSON object")
        image = need(ann, "image_id", int, where)
        text = need(ann, "caption", str, where)
        if image in truth:
            truth[image].update(obj for _, obj in chair.mentions(text))
    return truth


def clean(answer: str) -> str:
    return answer.replace("Assistant:", "").strip()


class Suite:
    def __init__(self, questions: bytes, references: dict[str, bytes]) -> None:
        self.questions: list[Question] = []
        self.image_ids: list[int] = []
        for index, (n, row) in enumerate(json_lines(questions, NAME)):
            where = f"{NAME} line {n}"
            image_id = _image_id(need(row, "image_id", (int, str), where), where)
            question = need(row, "question", str, where, nonempty=True)
            if "image" in row:
                try:
                    image: str | bytes = base64.b64decode(need(row, "image", str, where, nonempty=True), validate=True)
                except binascii.Error as e:
                    raise InvalidRequest(f"{where}: field 'image' is not base64 ({e})") from None
            elif "image_path" in row:
                image = need(row, "image_path", str, where, nonempty=True)
            else:
                raise InvalidRequest(f"{where}: missing field 'image' (the image as base64) or 'image_path'")
            qid = row.get("question_id", index)
            self.questions.append(Question(str(qid), question, image, {"image_id": image_id, "question": question}))
            self.image_ids.append(image_id)
        synonyms = reference(references, "synonyms", "object-halbench")
        try:
            self.chair = Chair(synonyms.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"synonyms file: not UTF-8 (byte {e.start})") from None
        if not self.chair.object_of:
            raise InvalidRequest("synonyms file: no words (one COCO object a line: 'name, synonym, ...')")
        self.truth = ground_truth(set(self.image_ids), reference(references, "instances", "object-halbench"), reference(references, "captions", "object-halbench"), self.chair)

    def parse(self, k: int, answer: str) -> str:
        # The COCO objects the caption names, for the answers file.
        return ", ".join(obj for _, obj in self.chair.mentions(clean(answer)))

    def metrics(self, answers: list[str]) -> dict[str, float]:
        m = chair_metrics([clean(a) for a in answers], [self.truth[i] for i in self.image_ids], self.chair)
        m["empty_answers"] = float(sum(1 for a in answers if not clean(a)))
        return m
