"""One conformance suite that every implemented worker kind must pass.

Each kind supplies a small adapter (how to call its batch RPC, a valid and an invalid
item); the assertions are the same for all kinds. Add a kind here when it lands.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pds_dpo_workers.models import tiny
from pds_dpo_workers.models.spec import parse_spec, resolve
from pds_dpo_workers.proto import (
    common_pb2,
    image_generator_pb2 as gen_pb,
    image_generator_pb2_grpc as gen_grpc,
    image_scorer_pb2 as score_pb,
    image_scorer_pb2_grpc as score_grpc,
    responder_pb2 as resp_pb,
    responder_pb2_grpc as resp_grpc,
    response_scorer_pb2 as rscore_pb,
    response_scorer_pb2_grpc as rscore_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from worker_harness import (
    GENERATOR_MODEL,
    JUDGE_SCORER_MODEL,
    RESPONDER_MODEL,
    REWARD_SCORER_MODEL,
    SCORER_MODEL,
    png_bytes,
)


@dataclass(frozen=True)
class Result:
    id: str
    error_code: str  # "" when the item succeeded
    has_output: bool  # an image (generator), a finite score (scorers) or an answer (responder)
    deterministic: bool  # the error's flag: the same input always fails the same way


@dataclass(frozen=True)
class KindCase:
    name: str
    fixture: str
    model: dict
    kind: int
    service: str
    model_class: str
    # (channel, items) -> the per-item results of one streaming call
    call: Callable[[grpc.Channel, list], list[Result]]
    valid_item: Callable[[str], object]
    invalid_item: Callable[[str], object]
    invalid_code: str

    def __str__(self) -> str:
        return self.name


def _generate(channel, items) -> list[Result]:
    req = gen_pb.GenerateRequest(items=items, output=common_pb2.OUTPUT_MODE_INLINE)
    out = []
    for resp in gen_grpc.ImageGeneratorServiceStub(channel).Generate(req, timeout=120):
        if resp.WhichOneof("event") == "image":
            img = resp.image
            out.append(Result(img.id, img.error.code, img.image.inline.startswith(b"\x89PNG"), img.error.deterministic))
    return out


def _score(channel, items) -> list[Result]:
    req = score_pb.ImageScorerServiceScoreRequest(items=items)
    out = []
    for resp in score_grpc.ImageScorerServiceStub(channel).Score(req, timeout=120):
        if resp.WhichOneof("event") == "score":
            s = resp.score
            out.append(Result(s.id, s.error.code, "cosine" in s.components and s.score == s.score, s.error.deterministic))
    return out


def _respond(channel, items) -> list[Result]:
    req = resp_pb.RespondRequest(items=items)
    out = []
    for resp in resp_grpc.ResponderServiceStub(channel).Respond(req, timeout=120):
        if resp.WhichOneof("event") == "response":
            r = resp.response
            answered = r.finish_reason in ("stop", "length") and r.num_tokens > 0 and r.text != ""
            out.append(Result(r.id, r.error.code, answered, r.error.deterministic))
    return out


def _score_responses(channel, items, components: frozenset) -> list[Result]:
    req = rscore_pb.ResponseScorerServiceScoreRequest(items=items)
    out = []
    for resp in rscore_grpc.ResponseScorerServiceStub(channel).Score(req, timeout=120):
        if resp.WhichOneof("event") == "score":
            s = resp.score
            scored = not s.HasField("error") and math.isfinite(s.score) and set(s.components) == components
            out.append(Result(s.id, s.error.code, scored, s.error.deterministic))
    return out


def _gen_item(item_id: str, steps: int = 2) -> gen_pb.ImageGenerationItem:
    return gen_pb.ImageGenerationItem(id=item_id, prompt="a red vintage car", steps=steps, width=64, height=64, seed=3)


def _score_item(item_id: str, data: bytes | None = None) -> score_pb.ImageScoringItem:
    return score_pb.ImageScoringItem(id=item_id, prompt="a red vintage car", image=common_pb2.Blob(inline=data if data is not None else png_bytes(1)))


def _respond_item(item_id: str, data: bytes | None = None) -> resp_pb.RespondItem:
    return resp_pb.RespondItem(
        id=item_id,
        image=common_pb2.Blob(inline=data if data is not None else png_bytes(1)),
        instruction="<image> describe the image in detail",
        seed=3,
        decoding=resp_pb.Decoding(max_new_tokens=8),
    )


def _response_item(item_id: str, answer: str = "a red vintage car parked on a street") -> rscore_pb.ResponseScoringItem:
    return rscore_pb.ResponseScoringItem(
        id=item_id, question="what is in the picture", answer=answer, image=common_pb2.Blob(inline=png_bytes(1))
    )


CASES = [
    KindCase(
        name="image-generator",
        fixture="generator_worker",
        model=GENERATOR_MODEL,
        kind=common_pb2.WORKER_KIND_IMAGE_GENERATOR,
        service="pdsdpo.v1.ImageGeneratorService",
        model_class="StableDiffusionPipeline",
        call=_generate,
        valid_item=_gen_item,
        invalid_item=lambda i: _gen_item(i, steps=0),
        invalid_code="invalid_input",
    ),
    KindCase(
        name="image-scorer",
        fixture="scorer_worker",
        model=SCORER_MODEL,
        kind=common_pb2.WORKER_KIND_IMAGE_SCORER,
        service="pdsdpo.v1.ImageScorerService",
        model_class="CLIPModel",
        call=_score,
        valid_item=_score_item,
        invalid_item=lambda i: _score_item(i, b"not a png"),
        invalid_code="invalid_image",
    ),
    KindCase(
        name="responder",
        fixture="responder_worker",
        model=RESPONDER_MODEL,
        kind=common_pb2.WORKER_KIND_RESPONDER,
        service="pdsdpo.v1.ResponderService",
        model_class="LlavaForConditionalGeneration",
        call=_respond,
        valid_item=_respond_item,
        invalid_item=lambda i: _respond_item(i, b"not a png"),
        invalid_code="invalid_image",
    ),
    KindCase(
        name="response-scorer-sequence-classification",
        fixture="reward_scorer_worker",
        model=REWARD_SCORER_MODEL,
        kind=common_pb2.WORKER_KIND_RESPONSE_SCORER,
        service="pdsdpo.v1.ResponseScorerService",
        model_class="LlamaForSequenceClassification",
        # A plain reward head: the score only, no components.
        call=partial(_score_responses, components=frozenset()),
        valid_item=_response_item,
        invalid_item=lambda i: _response_item(i, answer=""),
        invalid_code="empty_answer",
    ),
    KindCase(
        name="response-scorer-vlm-judge",
        fixture="judge_scorer_worker",
        model=JUDGE_SCORER_MODEL,
        kind=common_pb2.WORKER_KIND_RESPONSE_SCORER,
        service="pdsdpo.v1.ResponseScorerService",
        model_class="LlavaForConditionalGeneration",
        call=partial(_score_responses, components=frozenset({"p_yes", "p_no"})),
        valid_item=_response_item,
        invalid_item=lambda i: _response_item(i, answer=""),
        invalid_code="empty_answer",
    ),
]


@pytest.fixture(params=CASES, ids=str)
def case(request):
    return request.param


@pytest.fixture
def worker(case, request):
    return request.getfixturevalue(case.fixture)


def test_health_serving(case, worker):
    stub = health_pb2_grpc.HealthStub(worker.channel)
    for service in ("", case.service, "pdsdpo.v1.WorkerService"):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING, service


def test_health_unknown_service_is_not_found(worker):
    # Health answers for the served services only; a typo must not read as healthy.
    with pytest.raises(grpc.RpcError) as err:
        health_pb2_grpc.HealthStub(worker.channel).Check(health_pb2.HealthCheckRequest(service="pdsdpo.v1.Nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_describe_matches_the_model_on_disk(case, worker):
    info = worker_pb2_grpc.WorkerServiceStub(worker.channel).Describe(worker_pb2.DescribeRequest(), timeout=30).info
    assert info.kind == case.kind
    assert info.model.resolved_revision == f"tiny-v{tiny.BUILDER_VERSION}"
    assert info.model.model_class == case.model_class
    assert info.model.spec.id == case.model["id"]
    # Options (the response scorer's "type") are part of the recorded spec.
    assert dict(info.model.spec.options) == case.model.get("options", {})
    # Recomputed here from the files in the shared store, independently of the worker.
    expected = resolve(parse_spec(json.dumps(case.model)), str(worker.store))
    assert info.model.weights_sha256 == expected.weights_sha256
    assert [(f.path, f.sha256) for f in info.model.files] == [(f.path, f.sha256) for f in expected.files]
    assert info.device.type == "cpu"
    assert info.pid == worker.process.pid


def test_empty_batch_ends_with_no_results(case, worker):
    assert case.call(worker.channel, []) == []


def test_one_bad_item_never_fails_the_batch(case, worker):
    results = case.call(worker.channel, [case.invalid_item("bad"), case.valid_item("good")])
    by_id = {r.id: r for r in results}
    assert sorted(r.id for r in results) == ["bad", "good"], results  # exactly one result per item
    assert by_id["bad"].error_code == case.invalid_code
    assert by_id["bad"].has_output is False
    # A bad input fails the same way every time: the orchestrator may journal it.
    assert by_id["bad"].deterministic is True
    assert by_id["good"].error_code == ""
    assert by_id["good"].has_output is True
