"""Evaluator: POPE on the tiny LLaVA, in process (its backend loads once per module).

The gRPC path is the Kind base's, tested for every kind in test_kind_table.py.
"""

from __future__ import annotations

import json
import threading

import pytest

from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds import KINDS
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models.spec import parse_spec
from pds_dpo_workers.proto import common_pb2, evaluator_pb2 as pb, responder_pb2
from pds_dpo_workers.store import Store
from worker_harness import RESPONDER_MODEL, png_bytes

QUESTIONS = 5


@pytest.fixture(scope="module")
def evaluator(store_dir, tmp_path_factory):
    # The benchmark images (and the adapter directory) lie outside the store: the session's
    # temporary directory is an allowed root, as a config's directory is for a real worker.
    ctx = WorkerContext(
        spec=parse_spec(json.dumps(RESPONDER_MODEL)),
        store=Store(str(store_dir)),
        cache_root=str(store_dir),
        device="cpu",
        allowed_roots=(str(tmp_path_factory.getbasetemp()),),
    )
    impl = KINDS["evaluator"].create(ctx)
    impl.load()
    return impl


@pytest.fixture(scope="module")
def questions(tmp_path_factory, store_dir):
    root = tmp_path_factory.mktemp("pope")
    rows = []
    for i in range(QUESTIONS):
        (root / f"q{i}.png").write_bytes(png_bytes(seed=i))
        rows.append({"question_id": i, "image": f"q{i}.png", "text": f"Is there a cat in image {i}?", "label": "yes" if i % 2 else "no"})
    ref = Store(str(store_dir)).put("".join(json.dumps(r) + "\n" for r in rows).encode(), "application/jsonl")
    return root, ref


def evaluate(evaluator, questions, max_batch_size: int) -> list[pb.EvaluateResponse]:
    root, ref = questions
    req = pb.EvaluateRequest(
        benchmark="pope",
        questions=common_pb2.Blob(ref=ref),
        image_root=str(root),
        decoding=responder_pb2.Decoding(max_new_tokens=4),
        max_batch_size=max_batch_size,
        split="random",
    )
    out: list[pb.EvaluateResponse] = []
    evaluator._run(req, out.append, threading.Event())
    return out


def test_every_question_is_answered_and_the_metrics_come_last(evaluator, questions):
    out = evaluate(evaluator, questions, max_batch_size=2)
    answers = [r.answer for r in out if r.WhichOneof("event") == "answer"]
    assert [a.question_id for a in answers] == [str(i) for i in range(QUESTIONS)]
    assert all(a.parsed in ("yes", "no", "unparseable") for a in answers)
    # One progress event per batch of 2.
    assert [r.progress.done for r in out if r.WhichOneof("event") == "progress"] == [2, 4, 5]
    result = out[-1].result
    assert out[-1].WhichOneof("event") == "result"
    assert {"accuracy", "precision", "recall", "f1", "yes_ratio"} <= set(result.metrics)
    assert result.answers.sha256


def test_a_missing_adapter_is_an_invalid_request(evaluator, questions, tmp_path):
    root, ref = questions
    req = pb.EvaluateRequest(benchmark="pope", questions=common_pb2.Blob(ref=ref), image_root=str(root), adapter_dir=str(tmp_path), max_batch_size=2)
    with pytest.raises(InvalidRequest, match="no LoRA adapter"):
        evaluator._run(req, lambda r: None, threading.Event())


def test_max_batch_size_zero_answers_the_benchmark_as_one_batch(evaluator, questions):
    out = evaluate(evaluator, questions, max_batch_size=0)
    assert [r.progress.done for r in out if r.WhichOneof("event") == "progress"] == [QUESTIONS]
    assert sum(r.WhichOneof("event") == "answer" for r in out) == QUESTIONS
