"""POPE (Polling-based Object Probing Evaluation), as LLaVA evaluates it.

Question files are AoiDragon/POPE's output/coco/coco_pope_{random,popular,adversarial}.json:
one JSON object a line, {question_id, image, text, label: "yes"|"no"}, images relative to the
image directory (COCO val2014 for the original). The prompt is the question with LLaVA's
suffix (llava_pope_test.jsonl), and an answer is read as llava/eval/eval_pope.py reads it:
its first sentence, commas dropped, split on spaces; "No", "no" or "not" among the words is
"no", anything else, an empty answer included, is "yes". Empty answers are counted besides.
Metrics per split (one question file per request), "yes" the positive class: accuracy,
precision, recall, F1 and yes_ratio; where LLaVA divides by zero (no "yes" predicted) the
precision is 0 here.
"""

from __future__ import annotations

from pds_dpo_workers.benchmarks.files import Question, json_lines, need, ratio, yes_no_counts
from pds_dpo_workers.errors import InvalidRequest

NAME = "POPE questions"
SUFFIX = "\nAnswer the question using a single word or phrase."
ROLES: tuple[str, ...] = ()


def parse_answer(answer: str) -> str:
    """eval_pope.py's reading of an answer: "yes" or "no"."""
    text = answer.split(".")[0] if "." in answer else answer
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(labels: list[str], answers: list[str]) -> dict[str, float]:
    if len(labels) != len(answers):
        raise ValueError("labels and answers differ in length")
    predictions = [parse_answer(a) for a in answers]
    return {
        "questions": float(len(labels)),
        **yes_no_counts(labels, predictions, positive="yes"),
        "yes_ratio": ratio(predictions.count("yes"), len(predictions)),
        "empty_answers": float(sum(1 for a in answers if not a.strip())),
    }


class Suite:
    def __init__(self, questions: bytes, references: dict[str, bytes]) -> None:
        self.questions: list[Question] = []
        self.labels: list[str] = []
        seen: set[str] = set()
        for n, row in json_lines(questions, NAME):
            where = f"{NAME} line {n}"
            qid = need(row, "question_id", (int, str), where)
            image = need(row, "image", str, where, nonempty=True)
            text = need(row, "text", str, where, nonempty=True)
            label = need(row, "label", str, where)
            if label not in ("yes", "no"):
                raise InvalidRequest(f"{where}: field 'label' must be \"yes\" or \"no\", not {label!r}")
            if str(qid) in seen:
                raise InvalidRequest(f"{where}: question_id {qid} repeats an earlier line's")
            seen.add(str(qid))
            self.questions.append(Question(str(qid), text + SUFFIX, image, {"image": image, "text": text, "label": label}))
            self.labels.append(label)

    def parse(self, k: int, answer: str) -> str:
        return parse_answer(answer)

    def metrics(self, answers: list[str]) -> dict[str, float]:
        return pope_metrics(self.labels, answers)
