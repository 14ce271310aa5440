"""Response scorer: the sequence-classification reward model, the VLM judge, the "type" option."""

from __future__ import annotations

import math

import pytest

from pds_dpo_workers.proto import common_pb2, response_scorer_pb2 as pb, response_scorer_pb2_grpc as pb_grpc
from worker_harness import REWARD_SCORER_MODEL, WorkerSpec, png_bytes

QUESTION = "what is in the picture"
ANSWERS = [
    "a red vintage car parked on a narrow street at night",
    "a bowl of ramen with egg noodles on a dark table",
    "a cozy living room with a sofa and a sleeping dog",
]


def item(item_id: str, answer: str, image_seed: int | None = 1, question: str = QUESTION) -> pb.ResponseScoringItem:
    image = common_pb2.Blob(inline=png_bytes(image_seed)) if image_seed is not None else None
    return pb.ResponseScoringItem(id=item_id, question=question, answer=answer, image=image)


def score(channel, items, **kw) -> dict[str, pb.ResponseScore]:
    req = pb.ResponseScorerServiceScoreRequest(items=items, **kw)
    out = {}
    for resp in pb_grpc.ResponseScorerServiceStub(channel).Score(req, timeout=120):
        if resp.WhichOneof("event") == "score":
            assert resp.score.id not in out, f"duplicate result for {resp.score.id}"
            out[resp.score.id] = resp.score
    assert sorted(out) == sorted(i.id for i in items)
    return out


def assert_apart(scores: dict[str, float], gap: float) -> None:
    """Every two scores differ by more than `gap` (well above CPU float noise, ~1e-7 here)."""
    values = sorted(scores.values())
    assert all(b - a > gap for a, b in zip(values, values[1:])), scores


def ok(scores: dict[str, pb.ResponseScore]) -> dict[str, float]:
    for s in scores.values():
        assert not s.HasField("error"), (s.id, s.error)
    return {k: s.score for k, s in scores.items()}


# -- sequence classification (text-only reward model) -----------------------------------------


def test_reward_scores_are_deterministic_and_tell_answers_apart(reward_scorer_worker):
    items = [item(f"a{n}", answer) for n, answer in enumerate(ANSWERS)]
    first = score(reward_scorer_worker.channel, items)
    second = score(reward_scorer_worker.channel, items)
    assert ok(first) == ok(second)
    assert all(dict(s.components) == {} for s in first.values())
    # Different answers, different rewards: the score is not a constant.
    assert_apart(ok(first), 1e-4)


def test_reward_does_not_depend_on_padding_or_neighbours(reward_scorer_worker):
    # Right padding: the head reads the last real token, so a shorter answer padded up
    # to a longer neighbour gets (up to float noise) its score alone.
    batch = ok(score(reward_scorer_worker.channel, [item(f"a{n}", answer) for n, answer in enumerate(ANSWERS)]))
    for n, answer in enumerate(ANSWERS):
        alone = ok(score(reward_scorer_worker.channel, [item(f"a{n}", answer)]))[f"a{n}"]
        assert alone == pytest.approx(batch[f"a{n}"], rel=1e-4, abs=1e-6), n


def test_reward_is_text_only(reward_scorer_worker):
    # Text only, as in the paper: the image (or its absence) changes nothing. (Identical
    # rows of one CPU batch may still differ in the last float bits, hence approx.)
    items = [item("img1", ANSWERS[0], image_seed=1), item("img2", ANSWERS[0], image_seed=2), item("none", ANSWERS[0], image_seed=None)]
    scores = ok(score(reward_scorer_worker.channel, items))
    assert scores["img2"] == pytest.approx(scores["img1"], rel=1e-4, abs=1e-6)
    assert scores["none"] == pytest.approx(scores["img1"], rel=1e-4, abs=1e-6)
    # The tolerance is far below the gap between two different answers.
    other = ok(score(reward_scorer_worker.channel, [item("other", ANSWERS[1])]))["other"]
    assert other != pytest.approx(scores["img1"], rel=1e-4, abs=1e-6)


def test_reward_rejects_blank_answers(reward_scorer_worker):
    out = score(reward_scorer_worker.channel, [item("empty", ""), item("blank", "  \n "), item("ok", ANSWERS[0])])
    for bad in ("empty", "blank"):
        assert out[bad].error.code == "empty_answer", out[bad]
        # Never a low score in disguise.
        assert out[bad].score == 0.0 and dict(out[bad].components) == {}
    assert not out["ok"].HasField("error")


def test_reward_scores_blank_answers_when_asked(reward_scorer_worker):
    # score_empty_answers: as the paper's scripts did, "" is ranked like any answer.
    items = [item("empty", ""), item("blank", "  \n "), item("ok", ANSWERS[0])]
    out = ok(score(reward_scorer_worker.channel, items, score_empty_answers=True))
    assert all(math.isfinite(v) for v in out.values()), out
    alone = ok(score(reward_scorer_worker.channel, [item("ok", ANSWERS[0])]))["ok"]
    assert out["ok"] == pytest.approx(alone, rel=1e-4, abs=1e-6)


# -- VLM judge --------------------------------------------------------------------------------


def test_judge_score_is_p_yes_over_p_yes_plus_p_no(judge_scorer_worker):
    items = [item(f"a{n}", answer, image_seed=n) for n, answer in enumerate(ANSWERS)]
    scores = score(judge_scorer_worker.channel, items)
    ok(scores)
    for s in scores.values():
        assert set(s.components) == {"p_yes", "p_no"}
        p_yes, p_no = s.components["p_yes"], s.components["p_no"]
        assert 0.0 < p_yes < 1.0 and 0.0 < p_no < 1.0 and p_yes + p_no <= 1.0, (p_yes, p_no)
        assert 0.0 <= s.score <= 1.0
        assert s.score == pytest.approx(p_yes / (p_yes + p_no), rel=1e-5)
    # Deterministic, and not a constant.
    assert ok(score(judge_scorer_worker.channel, items)) == ok(scores)
    assert_apart(ok(scores), 1e-5)


def test_judge_sees_the_image(judge_scorer_worker):
    # Same question and answer, another image: another score (unlike the text-only reward).
    scores = ok(score(judge_scorer_worker.channel, [item("img1", ANSWERS[0], image_seed=1), item("img2", ANSWERS[0], image_seed=2)]))
    assert_apart(scores, 1e-5)


def test_judge_without_an_image_fails_its_item_only(judge_scorer_worker):
    out = score(judge_scorer_worker.channel, [item("none", ANSWERS[0], image_seed=None), item("ok", ANSWERS[0])])
    assert out["none"].error.code == "invalid_image", out["none"]
    assert not out["ok"].HasField("error")
    assert 0.0 <= out["ok"].score <= 1.0


def test_judge_empty_answers_fail_unless_asked_to_score_them(judge_scorer_worker):
    items = [item("empty", ""), item("ok", ANSWERS[0])]
    off = score(judge_scorer_worker.channel, items)
    assert off["empty"].error.code == "empty_answer" and not off["ok"].HasField("error")
    on = score(judge_scorer_worker.channel, items, score_empty_answers=True)
    ok(on)
    assert 0.0 <= on["empty"].score <= 1.0 and set(on["empty"].components) == {"p_yes", "p_no"}


# -- the "type" option ------------------------------------------------------------------------


UNKNOWN_TYPE = WorkerSpec.of("response-scorer", REWARD_SCORER_MODEL | {"options": {"type": "pairwise-oracle"}})


@pytest.mark.prestart(UNKNOWN_TYPE)
def test_unknown_type_fails_to_load_and_lists_the_known_types(prestarter):
    event, rc, worker = prestarter.load_failure(UNKNOWN_TYPE)
    assert rc == 3, worker.log_tail()
    assert event["code"] == "invalid_model_spec"
    message = event["message"]
    assert "pairwise-oracle" in message
    assert "sequence-classification" in message and "vlm-judge" in message, message
