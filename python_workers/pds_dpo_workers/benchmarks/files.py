"""Reading a benchmark's files: JSON, JSON lines and typed fields, each error naming the file,
the line or row, and the field (InvalidRequest, one line)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pds_dpo_workers.errors import InvalidRequest


@dataclass(frozen=True)
class Question:
    """One prompt to answer: its id, the text the model sees, its image (a path relative to
    the request's image_root, or the encoded image itself) and the fields written beside the
    answer in the answers file."""

    question_id: str
    prompt: str
    image: str | bytes
    record: dict[str, Any] = field(default_factory=dict)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"{name}: not UTF-8 (byte {e.start})") from None


def json_document(data: bytes, name: str) -> Any:
    """A whole-file JSON document."""
    try:
        return json.loads(_text(data, name))
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"{name}: not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def json_lines(data: bytes, name: str) -> list[tuple[int, dict]]:
    """One JSON object a line (blank lines skipped), each with its 1-based line number."""
    rows = []
    for n, line in enumerate(_text(data, name).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{name} line {n}: not JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(row, dict):
            raise InvalidRequest(f"{name} line {n}: not a JSON object")
        rows.append((n, row))
    if not rows:
        raise InvalidRequest(f"{name}: no questions")
    return rows


def json_list(data: bytes, name: str) -> list[tuple[int, dict]]:
    """A JSON list of objects, each with its 1-based position ("row")."""
    doc = json_document(data, name)
    if not isinstance(doc, list):
        raise InvalidRequest(f"{name}: not a JSON list")
    for i, row in enumerate(doc, 1):
        if not isinstance(row, dict):
            raise InvalidRequest(f"{name} row {i}: not a JSON object")
    return list(enumerate(doc, 1))


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def need(row: dict, key: str, kind: type | tuple[type, ...], where: str, *, nonempty: bool = False) -> Any:
    """row[key], which must be of `kind` (bool is no integer); `where` names the file and row."""
    if key not in row:
        raise InvalidRequest(f"{where}: missing field '{key}'")
    value = row[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join(_TYPE_NAMES[k] for k in kinds)
        raise InvalidRequest(f"{where}: field '{key}' must be {wanted}, not {json.dumps(value)[:60]}")
    if nonempty and not value:
        raise InvalidRequest(f"{where}: field '{key}' is empty")
    return value


def string_list(row: dict, key: str, where: str) -> list[str]:
    values = need(row, key, list, where)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise InvalidRequest(f"{where}: field '{key}' item {i + 1} must be a string, not {json.dumps(v)[:60]}")
    return values


def reference(references: dict[str, bytes], role: str, benchmark: str) -> bytes:
    if role not in references:
        raise InvalidRequest(f"{benchmark} needs its '{role}' reference file (request references: {', '.join(sorted(references)) or 'none'})")
    return references[role]


def ratio(num: float, den: float) -> float:
    """num / den, 0 for an empty denominator (the original scripts divide by zero there, or by
    AMBER's 0.001 seed, which gives the same 0)."""
    return num / den if den else 0.0


def yes_no_counts(labels: list[str], predictions: list[str], positive: str) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of yes/no predictions with `positive` as the positive
    class; a prediction that is neither is wrong and predicts nothing."""
    negative = "no" if positive == "yes" else "yes"
    tp = sum(1 for l, p in zip(labels, predictions) if l == positive and p == positive)
    fp = sum(1 for l, p in zip(labels, predictions) if l == negative and p == positive)
    correct = sum(1 for l, p in zip(labels, predictions) if l == p)
    positives = sum(1 for l in labels if l == positive)
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, positives)
    return {
        "accuracy": ratio(correct, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * precision * recall, precision + recall),
    }
