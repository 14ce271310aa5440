"""The alternative to the orchestrator: one Python process, models loaded in-process, the
pipeline run as a plain sequential loop like the published scripts (generate, score, keep
the best, answer with each responder in turn, score the answers).

It calls the worker kinds' own compute (`_run`) directly, with the same items, seeds and batch
sizes as the orchestrated run, so the difference in wall time is what orchestration costs:
processes, gRPC, scheduling, the journal and the run records.

usage: python bench/direct_pipeline.py WORK.json  (written by bench/overhead.mjs); prints JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time


def derived_seed(experiment_seed: int, item_id: str) -> int:
    # The orchestrator's derivedSeed (src/plan/seeds.ts).
    digest = hashlib.sha256(f"pds-dpo/seed/v1\0{experiment_seed}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def main(path: str) -> int:
    t_start = time.perf_counter()
    with open(path) as f:
        work = json.load(f)
    from in_process import call, load, prepare

    from pds_dpo_workers.proto import common_pb2, image_generator_pb2, image_scorer_pb2, responder_pb2, response_scorer_pb2

    store = prepare(work)

    def create(worker: dict):
        return load(worker["kind"], worker["model"], store, work["store"], work["device"])

    t0 = time.perf_counter()
    generator = create(work["generator"])
    scorer = create(work["scorer"])
    responders = [(w["name"], create(w), w["batch"]) for w in work["responders"]]
    response_scorer = create(work["response_scorer"])
    load_s = time.perf_counter() - t0
    phases: dict[str, float] = {}
    # 1. Generate, in the plan's batches.
    t0 = time.perf_counter()
    images: dict[str, tuple[str, bool]] = {}
    for chunk in chunks(work["candidates"], work["generator"]["batch"]):
        req = image_generator_pb2.GenerateRequest(
            items=[
                image_generator_pb2.ImageGenerationItem(
                    id=c["id"], prompt=c["prompt"], negative_prompt=c["negativePrompt"], guidance_scale=c["guidanceScale"],
                    steps=c["steps"], width=c["width"], height=c["height"], seed=c["seed"],
                )
                for c in chunk
            ],
            output=common_pb2.OUTPUT_MODE_STORE,
            max_batch_size=len(chunk),
        )
        for msg in call(generator, req):
            if msg.HasField("image") and not msg.image.HasField("error"):
                images[msg.image.id] = (msg.image.image.ref.sha256, len(msg.image.defects) == 0)
    phases["generate_s"] = time.perf_counter() - t0

    # 2. Score the clean images, in fixed slices of the plan.
    t0 = time.perf_counter()
    by_id = {c["id"]: c for c in work["candidates"]}
    scores: dict[str, float] = {}
    for chunk in chunks(work["candidates"], work["scorer"]["batch"]):
        batch = [c for c in chunk if c["id"] in images and images[c["id"]][1]]
        if not batch:
            continue
        req = image_scorer_pb2.ImageScorerServiceScoreRequest(
            items=[
                image_scorer_pb2.ImageScoringItem(id=c["id"], prompt=c["prompt"], image=common_pb2.Blob(ref=store_ref(store, images[c["id"]][0])))
                for c in batch
            ],
            max_batch_size=len(batch),
        )
        for msg in call(scorer, req):
            if msg.HasField("score") and not msg.score.HasField("error"):
                scores[msg.score.id] = msg.score.score
    phases["image_score_s"] = time.perf_counter() - t0

    # 3. Keep the best image per prompt (ties: the lower image number).
    best: dict[str, dict] = {}
    for cid, score in scores.items():
        c = by_id[cid]
        cur = best.get(c["promptId"])
        if cur is None or score > scores[cur["id"]] or (score == scores[cur["id"]] and c["imageNumber"] < cur["imageNumber"]):
            best[c["promptId"]] = c
    kept = sorted(best.values(), key=lambda c: c["promptIndex"])

    # 4. Each responder in turn answers every kept image.
    t0 = time.perf_counter()
    decoding = responder_pb2.Decoding(**work["decoding"])
    answers: list[tuple[dict, str, str]] = []
    for name, impl, batch_size in responders:
        for chunk in chunks(kept, batch_size):
            req = responder_pb2.RespondRequest(
                items=[
                    responder_pb2.RespondItem(
                        id=f"{c['promptId']}.{name}", image=common_pb2.Blob(ref=store_ref(store, images[c["id"]][0])),
                        instruction=c["instruction"], seed=derived_seed(work["seed"], f"{c['promptId']}.{name}"), decoding=decoding,
                    )
                    for c in chunk
                ],
                max_batch_size=len(chunk),
            )
            by_prompt = {f"{c['promptId']}.{name}": c for c in chunk}
            for msg in call(impl, req):
                if msg.HasField("response") and not msg.response.HasField("error") and msg.response.text.strip():
                    answers.append((by_prompt[msg.response.id], f"{msg.response.id}.s{msg.response.sample_index}", msg.response.text))
    phases["respond_s"] = time.perf_counter() - t0

    # 5. Score every answer.
    t0 = time.perf_counter()
    answer_scores = 0
    for chunk in chunks(answers, work["response_scorer"]["batch"]):
        req = response_scorer_pb2.ResponseScorerServiceScoreRequest(
            items=[
                response_scorer_pb2.ResponseScoringItem(
                    id=aid, question=re.sub(r"^\s*<image>\s*", "", c["instruction"]), answer=text,
                    image=common_pb2.Blob(ref=store_ref(store, images[c["id"]][0])),
                )
                for c, aid, text in chunk
            ],
            max_batch_size=len(chunk),
        )
        answer_scores += sum(1 for m in call(response_scorer, req) if m.HasField("score") and not m.score.HasField("error"))
    phases["response_score_s"] = time.perf_counter() - t0

    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - t_start,
                "load_s": load_s,
                "compute_s": sum(phases.values()),
                "phases": phases,
                "counts": {"candidates": len(work["candidates"]), "generated": len(images), "scored": len(scores), "kept": len(kept), "answers": len(answers), "answer_scores": answer_scores},
                "kept_sha256": sorted(images[c["id"]][0] for c in kept),
            }
        )
    )
    return 0


def store_ref(store, sha256: str):
    from pds_dpo_workers.proto import common_pb2
    from pds_dpo_workers.store import URI_PREFIX

    return common_pb2.ArtifactRef(uri=URI_PREFIX + sha256, sha256=sha256, bytes=os.path.getsize(store.path_of(sha256)), media_type="image/png")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
