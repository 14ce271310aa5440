"""POPE (Polling-based Object Probing Evaluation): parsing answers and the metrics.

Pure functions, no model. An answer is parsed to "yes", "no" or "unparseable"; an
unparseable answer is counted, never guessed. Metrics treat "yes" as the positive class:
accuracy is over all questions (an unparseable answer is wrong), precision, recall and F1
over the yes/no predictions (an unparseable answer to a "yes" question is a miss, so it
lowers recall), yes_ratio is the share of questions answered "yes".
"""

from __future__ import annotations

import re

YES = {"yes", "yeah", "yep", "true", "correct"}
NO = {"no", "not", "nope", "false", "incorrect", "none"}


def parse_yes_no(answer: str) -> str:
    words = re.findall(r"[a-z]+", answer.lower())
    if not words:
        return "unparseable"
    if words[0] in YES:
        return "yes"
    if words[0] in NO:
        return "no"
    has_yes = any(w in YES for w in words)
    has_no = any(w in NO for w in words)
    if has_yes and not has_no:
        return "yes"
    if has_no and not has_yes:
        return "no"
    return "unparseable"


def pope_metrics(labels: list[str], predictions: list[str]) -> dict[str, float]:
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")
    n = len(labels)
    tp = sum(1 for l, p in zip(labels, predictions) if l == "yes" and p == "yes")
    tn = sum(1 for l, p in zip(labels, predictions) if l == "no" and p == "no")
    fp = sum(1 for l, p in zip(labels, predictions) if l == "no" and p == "yes")
    fn = sum(1 for l, p in zip(labels, predictions) if l == "yes" and p != "yes")
    unparseable = sum(1 for p in predictions if p == "unparseable")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "questions": float(n),
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": sum(1 for p in predictions if p == "yes") / n if n else 0.0,
        "unparseable": float(unparseable),
        "unparseable_ratio": unparseable / n if n else 0.0,
    }
