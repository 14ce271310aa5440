"""Evaluator: the four benchmarks' fixtures (configs/benchmarks) through the Evaluate RPC of
one real worker on the tiny LLaVA; requests it refuses before the model runs, in process."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import grpc
import pytest

from pds_dpo_workers.benchmarks import BENCHMARKS
from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds import KINDS
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models.spec import parse_spec
from pds_dpo_workers.proto import common_pb2, evaluator_pb2 as pb, evaluator_pb2_grpc as pb_grpc, responder_pb2
from pds_dpo_workers.store import Store
from worker_harness import RESPONDER_MODEL, WorkerSpec, prestart

FIXTURES = Path(__file__).resolve().parents[2] / "configs" / "benchmarks"


def evaluator_spec(basetemp) -> WorkerSpec:
    # The fixtures and the session's temporary directory (adapters) are the allowed roots.
    return WorkerSpec.of("evaluator", RESPONDER_MODEL, ("--device", "cpu", "--allow-root", str(FIXTURES), "--allow-root", str(basetemp)))


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: [evaluator_spec(basetemp)])
def evaluator(prestarter, tmp_path_factory):
    worker = prestarter.take(evaluator_spec(tmp_path_factory.getbasetemp()))
    yield worker
    assert worker.terminate() == 0, worker.log_tail()


# benchmark -> (question file, image_root, references by role, max_new_tokens)
CASES = {
    "pope": ("pope/coco_pope_adversarial.json", "pope/images", {}, 3),
    "object-halbench": (
        "object-halbench/obj_halbench_300_with_image.jsonl",
        "",
        {"instances": "object-halbench/annotations/instances_val2014.json", "captions": "object-halbench/annotations/captions_val2014.json", "synonyms": "object-halbench/synonyms.txt"},
        6,
    ),
    "amber": ("amber/query/query_all.json", "amber/images", {"annotations": "amber/annotations.json", "relation": "amber/relation.json", "safe_words": "amber/safe_words.txt"}, 6),
    "mmhal": ("mmhal/response_template.json", "mmhal/images", {}, 6),
}
METRICS = {
    "pope": {"accuracy", "precision", "recall", "f1", "yes_ratio", "questions", "empty_answers"},
    "object-halbench": {"chair_s", "chair_i", "object_recall", "captions", "object_mentions", "hallucinated_mentions", "empty_answers"},
    "amber": {"chair", "cover", "hal", "cog", "accuracy", "precision", "recall", "f1", "existence_accuracy", "attribute_f1", "relation_recall", "questions", "empty_answers"},
    "mmhal": {"questions", "empty_answers"},
}


def blob(store: Store, path: str) -> common_pb2.Blob:
    return common_pb2.Blob(ref=store.put((FIXTURES / path).read_bytes(), "application/octet-stream"))


def request(store: Store, benchmark: str, max_batch_size: int = 4) -> pb.EvaluateRequest:
    questions, image_root, refs, max_new = CASES[benchmark]
    return pb.EvaluateRequest(
        benchmark=benchmark,
        questions=blob(store, questions),
        image_root=str(FIXTURES / image_root) if image_root else "",
        references={role: blob(store, path) for role, path in refs.items()},
        decoding=responder_pb2.Decoding(max_new_tokens=max_new),
        max_batch_size=max_batch_size,
    )


def evaluate(worker, req) -> list[pb.EvaluateResponse]:
    return list(pb_grpc.EvaluatorServiceStub(worker.channel).Evaluate(req, timeout=120))


@pytest.mark.parametrize("benchmark", list(CASES))
def test_each_benchmark_runs_on_its_fixture(evaluator, store_dir, benchmark):
    store = Store(str(store_dir))
    out = evaluate(evaluator, request(store, benchmark))
    suite = BENCHMARKS[benchmark].Suite((FIXTURES / CASES[benchmark][0]).read_bytes(), {r: (FIXTURES / p).read_bytes() for r, p in CASES[benchmark][2].items()})
    ids = [q.question_id for q in suite.questions]
    answers = [r.answer for r in out if r.WhichOneof("event") == "answer"]
    assert [a.question_id for a in answers] == ids
    assert out[-1].WhichOneof("event") == "result"
    result = out[-1].result
    assert METRICS[benchmark] <= set(result.metrics)
    assert result.metrics["empty_answers"] == sum(1 for a in answers if not a.answer)
    # The worker's metrics are the suite's on the answers it streamed.
    expected = suite.metrics([a.answer for a in answers])
    assert dict(result.metrics) == pytest.approx(expected)
    lines = [json.loads(line) for line in store.read_ref(result.answers).decode().splitlines()]
    assert [(l["question_id"], l["answer"], l["parsed"]) for l in lines] == [(a.question_id, a.answer, a.parsed) for a in answers]
    if benchmark == "mmhal":
        # What MMHal's scoring reads, with the answer: every template field.
        assert {"question_type", "question_topic", "image_id", "image_src", "image_content", "question", "gt_answer"} <= set(lines[0])
    if benchmark == "pope":
        assert all(a.parsed in ("yes", "no") for a in answers)
        assert [l["label"] for l in lines] == ["yes", "no"] * 3


def test_batches_stream_progress_and_zero_is_one_batch(evaluator, store_dir):
    store = Store(str(store_dir))
    progress = [r.progress.done for r in evaluate(evaluator, request(store, "pope", max_batch_size=4)) if r.WhichOneof("event") == "progress"]
    assert progress == [4, 6]
    progress = [r.progress.done for r in evaluate(evaluator, request(store, "pope", max_batch_size=0)) if r.WhichOneof("event") == "progress"]
    assert progress == [6]


def test_a_missing_reference_is_an_invalid_argument_over_grpc(evaluator, store_dir):
    req = request(Store(str(store_dir)), "object-halbench")
    del req.references["captions"]
    with pytest.raises(grpc.RpcError) as e:
        evaluate(evaluator, req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "object-halbench needs its 'captions' reference file" in e.value.details()


def test_a_missing_adapter_is_an_invalid_argument(evaluator, store_dir, tmp_path):
    req = request(Store(str(store_dir)), "mmhal")
    req.adapter_dir = str(tmp_path)
    with pytest.raises(grpc.RpcError) as e:
        evaluate(evaluator, req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no LoRA adapter" in e.value.details()


# -- refused before the model runs (an evaluator that never loads) -----------------------------


@pytest.fixture
def unloaded(store_dir, tmp_path):
    ctx = WorkerContext(spec=parse_spec(json.dumps(RESPONDER_MODEL)), store=Store(str(store_dir)), cache_root=str(store_dir), device="cpu", allowed_roots=(str(tmp_path), str(FIXTURES)))
    return KINDS["evaluator"].create(ctx)


def test_a_reference_role_the_benchmark_does_not_read_is_refused(unloaded, store_dir):
    req = request(Store(str(store_dir)), "pope")
    req.references["synonyms"].CopyFrom(common_pb2.Blob(inline=b"dog\n"))
    with pytest.raises(InvalidRequest, match=r"^pope reads no 'synonyms' reference file \(roles: none\)$"):
        unloaded._run(req, lambda r: None, threading.Event())


def test_an_image_that_does_not_decode_names_its_question(unloaded, store_dir, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    suite = BENCHMARKS["pope"].Suite(b'{"question_id": 9, "image": "broken.png", "text": "Is there a dog?", "label": "no"}\n', {})
    req = pb.EvaluateRequest(benchmark="pope", image_root=str(tmp_path))
    with pytest.raises(InvalidRequest, match=r"^benchmark image .*broken.png \(question 9\): cannot identify image file"):
        unloaded._answer(req, suite, None, lambda r: None, threading.Event())
    # Object-HalBench's images come inline, as base64.
    row = {"image_id": 101, "question": "Describe the image.", "image": base64.b64encode(b"not an image").decode()}
    refs = {r: (FIXTURES / p).read_bytes() for r, p in CASES["object-halbench"][2].items()}
    suite = BENCHMARKS["object-halbench"].Suite((json.dumps(row) + "\n").encode(), refs)
    with pytest.raises(InvalidRequest, match=r"^question 0: its image does not decode: cannot identify image file"):
        unloaded._answer(pb.EvaluateRequest(benchmark="object-halbench"), suite, None, lambda r: None, threading.Event())
