"""Image scorer: determinism, bad inputs fail their item only, the score's components."""

from __future__ import annotations

import math

import pytest

from pds_dpo_workers.proto import common_pb2, image_scorer_pb2 as pb, image_scorer_pb2_grpc as pb_grpc
from worker_harness import png_bytes

PROMPT = "a close up of a sunflower with a bee"


def score(channel, items, max_batch_size: int = 0, progress: list | None = None) -> dict[str, pb.ImageScore]:
    req = pb.ImageScorerServiceScoreRequest(items=items, max_batch_size=max_batch_size)
    out = {}
    for resp in pb_grpc.ImageScorerServiceStub(channel).Score(req, timeout=120):
        if resp.WhichOneof("event") == "progress" and progress is not None:
            progress.append(resp.progress.done)
        if resp.WhichOneof("event") == "score":
            assert resp.score.id not in out, f"duplicate result for {resp.score.id}"
            out[resp.score.id] = resp.score
    assert sorted(out) == sorted(i.id for i in items)
    return out


def inline_item(item_id: str, data: bytes, prompt: str = PROMPT) -> pb.ImageScoringItem:
    return pb.ImageScoringItem(id=item_id, prompt=prompt, image=common_pb2.Blob(inline=data))


@pytest.fixture(scope="module")
def images():
    return [png_bytes(seed) for seed in range(3)]


def test_scores_are_deterministic(scorer_worker, images):
    items = [inline_item(f"i{n}", data) for n, data in enumerate(images)]
    first = score(scorer_worker.channel, items)
    second = score(scorer_worker.channel, items)
    for item_id, s in first.items():
        assert not s.HasField("error"), s.error
        assert s.score == second[item_id].score
        assert dict(s.components) == dict(second[item_id].components)
    # Different images get different scores: the scores are not a constant.
    assert len({s.score for s in first.values()}) == len(images)


def test_score_is_logit_scale_times_cosine(scorer_worker, images):
    s = score(scorer_worker.channel, [inline_item("x", images[0])])["x"]
    assert set(s.components) == {"cosine", "logit_scale"}
    cosine, scale = s.components["cosine"], s.components["logit_scale"]
    assert -1.0 <= cosine <= 1.0
    # The tiny CLIPModel keeps CLIP's initial logit_scale, ln(1/0.07): the worker must
    # report exp(logit_scale), not the raw parameter.
    assert scale == pytest.approx(math.exp(2.6592), rel=1e-4)
    assert s.score == pytest.approx(cosine * scale, rel=1e-6, abs=1e-9)


def test_ref_missing_from_the_store_fails_its_item(scorer_worker, images):
    absent = "ab" * 32
    assert not (scorer_worker.store / "cas" / "sha256" / absent[:2] / absent).exists()
    missing = pb.ImageScoringItem(
        id="missing",
        prompt=PROMPT,
        image=common_pb2.Blob(ref=common_pb2.ArtifactRef(uri=f"cas://sha256/{absent}", sha256=absent, bytes=10, media_type="image/png")),
    )
    out = score(scorer_worker.channel, [missing, inline_item("ok", images[0])])
    err = out["missing"].error
    assert err.code == "invalid_image"
    assert "store" in err.message or "missing" in err.message, err.message
    assert not out["ok"].HasField("error")


def test_ref_in_the_store_is_scored_like_inline(scorer_worker, images):
    from pds_dpo_workers.store import Store

    ref = Store(str(scorer_worker.store)).put(images[1], "image/png")
    out = score(scorer_worker.channel, [pb.ImageScoringItem(id="ref", prompt=PROMPT, image=common_pb2.Blob(ref=ref)), inline_item("inline", images[1])])
    assert not out["ref"].HasField("error"), out["ref"].error
    # The same image at another position of the batch: equal within the score tolerance
    # (rel 1e-4), not to the bit, since some CPUs' kernels treat batch rows differently
    # (3.42529296875 vs 3.4252917766571045 seen). The same batch again is bit-equal
    # (test_scores_are_deterministic).
    assert out["ref"].score == pytest.approx(out["inline"].score, rel=1e-4)
    assert dict(out["ref"].components) == pytest.approx(dict(out["inline"].components), rel=1e-4)


def test_truncated_png_fails_its_item(scorer_worker, images):
    data = images[2]
    out = score(scorer_worker.channel, [inline_item("cut", data[: len(data) // 2]), inline_item("ok", data)])
    assert out["cut"].error.code == "invalid_image"
    assert out["cut"].error.message
    assert not out["ok"].HasField("error")


def test_max_batch_size_zero_scores_the_request_as_one_batch(scorer_worker, images):
    items = [inline_item(f"i{n}", data) for n, data in enumerate(images)]
    one, sliced = [], []
    score(scorer_worker.channel, items, max_batch_size=0, progress=one)
    score(scorer_worker.channel, items, max_batch_size=2, progress=sliced)
    # A progress event ends each batch.
    assert one == [3]
    assert sliced == [2, 3]
