"""The DPO trainer worker through gRPC: metrics stream per step, and SIGTERM mid-training
stops at a step boundary, saves a checkpoint and exits 0; a second call resumes from it."""

from __future__ import annotations

import os
import threading

import grpc
import pytest

from pds_dpo_workers.proto import common_pb2, dpo_trainer_pb2 as pb, dpo_trainer_pb2_grpc as pb_grpc
from pds_dpo_workers.store import Store
from worker_harness import RESPONDER_MODEL, WorkerSpec, allow_tmp, pairs_dataset as dataset, prestart


def request(store: Store, root, checkpoints, max_steps: int, resume: bool = False) -> pb.TrainRequest:
    ref = store.put(dataset(root), "application/jsonl")
    return pb.TrainRequest(
        dataset=common_pb2.Blob(ref=ref),
        image_root=str(root),
        lora=pb.LoraConfig(r=4, alpha=8),
        dpo=pb.DpoConfig(beta=0.1),
        optim=pb.OptimConfig(learning_rate=1e-3, max_steps=max_steps, batch_size=1),
        seed=3,
        checkpoint_dir=str(checkpoints),
        checkpoint_every=1000,
        resume=resume,
    )


def trainer_worker(basetemp) -> WorkerSpec:
    # Image roots and checkpoints lie in the tests' temporary directories, outside the store.
    return WorkerSpec.of("dpo-trainer", RESPONDER_MODEL, allow_tmp(basetemp))


# The trainer, and the second one that resumes its training.
@pytest.fixture
@prestart(lambda param, basetemp: [trainer_worker(basetemp)] * 2)
def trainer(prestarter, tmp_path_factory):
    w = prestarter.take(trainer_worker(tmp_path_factory.getbasetemp()))
    yield w
    w.terminate()


def test_sigterm_stops_at_a_step_boundary_saves_and_a_resume_goes_on(trainer, prestarter, store_dir, tmp_path, tmp_path_factory):
    store = Store(str(store_dir))
    checkpoints = tmp_path / "ckpt"
    steps: list[int] = []
    first_step = threading.Event()

    def consume():
        try:
            for r in pb_grpc.DpoTrainerServiceStub(trainer.channel).Train(request(store, tmp_path, checkpoints, 200), timeout=120):
                if r.WhichOneof("event") == "step":
                    steps.append(r.step.step)
                    assert "loss" in r.step.metrics and "rewards/margins" in r.step.metrics
                    first_step.set()
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)

    t = threading.Thread(target=consume)
    t.start()
    assert first_step.wait(90), trainer.log_tail()
    assert trainer.terminate(timeout=60) == 0, trainer.log_tail()
    t.join(30)
    # No periodic checkpoint was due (every 1000 steps): this one was saved on the stop.
    saved = sorted(int(p.split("-")[1]) for p in os.listdir(checkpoints) if p.startswith("checkpoint-"))
    assert len(saved) == 1 and 1 <= saved[0] < 200

    again = prestarter.take(trainer_worker(tmp_path_factory.getbasetemp()))
    try:
        resumed = []
        result = None
        for r in pb_grpc.DpoTrainerServiceStub(again.channel).Train(request(store, tmp_path, checkpoints, saved[0] + 2, resume=True), timeout=120):
            if r.WhichOneof("event") == "step":
                resumed.append(r.step.step)
            if r.WhichOneof("event") == "result":
                result = r.result
        # Step counting goes on from the checkpoint; it does not restart at 1.
        assert resumed == [saved[0] + 1, saved[0] + 2]
        assert result is not None and result.steps == saved[0] + 2 and not result.interrupted
        assert os.path.isfile(store.path_of(result.adapter.sha256))
    finally:
        assert again.terminate() == 0
