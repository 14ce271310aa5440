"""MMHal-Bench: answers to its questions, for a judge to rate.

The question file is MMHal-Bench's response_template.json: a JSON list of {question_type,
question_topic, image_id, image_src, image_content, question, gt_answer, model_answer}.
The image is the file named like image_src's last path segment in the image directory, as
MMHal's download (test_data.zip, images/) stores them; the prompt is the question. The
worker only answers: each answer is keyed by its template index and carries the template's
fields, which the rubric (eval_gpt4.py: image contents, question, standard answer, response)
needs; the rating is the control plane's judge's. Metrics: questions and empty answers.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

from pds_dpo_workers.benchmarks.files import Question, json_list, need, string_list
from pds_dpo_workers.errors import InvalidRequest

NAME = "MMHal-Bench template"
ROLES: tuple[str, ...] = ()
FIELDS = ("question_type", "question_topic", "image_id", "image_src", "question", "gt_answer")


def image_name(image_src: str) -> str:
    """The file name MMHal's images/ holds for image_src (a URL's last path segment)."""
    return posixpath.basename(urlparse(image_src).path)


class Suite:
    def __init__(self, questions: bytes, references: dict[str, bytes]) -> None:
        self.questions: list[Question] = []
        for n, row in json_list(questions, NAME):
            where = f"{NAME} row {n}"
            record = {f: need(row, f, str, where) for f in FIELDS}
            record["image_content"] = string_list(row, "image_content", where)
            if not record["question"]:
                raise InvalidRequest(f"{where}: field 'question' is empty")
            name = image_name(record["image_src"])
            if not name:
                raise InvalidRequest(f"{where}: field 'image_src' names no file: {record['image_src']!r}")
            if "model_answer" in row:
                need(row, "model_answer", str, where)
            self.questions.append(Question(str(n - 1), record["question"], name, record))

    def parse(self, k: int, answer: str) -> str:
        return ""

    def metrics(self, answers: list[str]) -> dict[str, float]:
        return {"questions": float(len(answers)), "empty_answers": float(sum(1 for a in answers if not a.strip()))}
