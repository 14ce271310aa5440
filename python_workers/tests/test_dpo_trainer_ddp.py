"""Distributed training for real: the dpo-trainer worker with gpus 2 runs two CPU ranks under
accelerate launch (torchrun, DDP over gloo), through gRPC.

Both ranks train on their shard of the pairs and rank 0 alone reports; a SIGKILL to a rank
fails the call naming the rank, leaves no process behind and keeps the worker serving; a
DeepSpeed config is checked before anything is launched. One worker for the module.
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import threading
import time

import grpc
import pytest

from pds_dpo_workers.models import tiny
from pds_dpo_workers.proto import common_pb2, dpo_trainer_pb2 as pb, dpo_trainer_pb2_grpc as pb_grpc, worker_pb2, worker_pb2_grpc
from pds_dpo_workers.store import Store
from worker_harness import REPO_ROOT, RESPONDER_MODEL, WorkerSpec, allow_tmp, pairs_dataset, prestart, processes_with


PAIRS = 4


def dataset(root) -> bytes:
    return pairs_dataset(root, PAIRS, seed=10)


def request(store: Store, root, max_steps: int, gpus: int = 2, deepspeed_config: str = "") -> pb.TrainRequest:
    return pb.TrainRequest(
        dataset=common_pb2.Blob(ref=store.put(dataset(root), "application/jsonl")),
        image_root=str(root),
        lora=pb.LoraConfig(r=4, alpha=8),
        dpo=pb.DpoConfig(beta=0.1),
        optim=pb.OptimConfig(learning_rate=1e-3, max_steps=max_steps, batch_size=1),
        seed=3,
        # Unique per test: every process of a training has it in its argv.
        checkpoint_dir=str(root / "ckpt"),
        checkpoint_every=1000,
        gpus=gpus,
        deepspeed_config=deepspeed_config,
    )


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class LogSince:
    """The worker's log from now on (the module's worker serves several tests)."""

    def __init__(self, worker) -> None:
        self.worker = worker
        self.offset = worker.log_path.stat().st_size

    def text(self) -> str:
        with open(self.worker.log_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode("utf-8", "replace")

    def rank_pids(self) -> dict[int, int]:
        return {int(r): int(p) for r, p in re.findall(r"distributed training: rank (\d+) is pid (\d+)", self.text())}


def trainer_worker(basetemp) -> WorkerSpec:
    # Image roots and checkpoints lie in the tests' temporary directories, outside the store.
    return WorkerSpec.of("dpo-trainer", RESPONDER_MODEL, allow_tmp(basetemp))


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: [trainer_worker(basetemp)])
def trainer(prestarter, tmp_path_factory):
    w = prestarter.take(trainer_worker(tmp_path_factory.getbasetemp()))
    yield w
    assert w.terminate() == 0, w.log_tail()


def test_two_cpu_ranks_train_and_rank_0_reports_one_adapter(trainer, store_dir, tmp_path):
    store = Store(str(store_dir))
    since = LogSince(trainer)
    steps, epochs, result = [], [], None
    for r in pb_grpc.DpoTrainerServiceStub(trainer.channel).Train(request(store, tmp_path, max_steps=2), timeout=150):
        if r.WhichOneof("event") == "step":
            steps.append(r.step.step)
            epochs.append(r.step.epoch)
            assert "loss" in r.step.metrics and "rewards/margins" in r.step.metrics
        elif r.WhichOneof("event") == "result":
            assert result is None
            result = r.result
    log = since.text()
    # Rank 0 alone reports: each step once.
    assert steps == [1, 2], log[-3000:]
    assert result is not None and result.steps == 2 and not result.interrupted
    # DDP: each rank trains on its half of the 4 pairs, so one step (a pair on each rank)
    # is half an epoch; a single process would be at a quarter.
    assert epochs[0] == pytest.approx(0.5)
    for rank in (0, 1):
        assert re.search(rf"rank{rank} \S+: rank {rank} of 2: 2 batches an epoch from its shard of {PAIRS} pairs", log), log[-3000:]
        assert re.search(rf"rank{rank} \S+: rank {rank} of 2: trained 2 steps", log), log[-3000:]
    assert sorted(since.rank_pids()) == [0, 1]
    history = [json.loads(line) for line in open(store.path_of(result.metrics.sha256))]
    assert [h["step"] for h in history if "loss" in h] == [1, 2]
    assert wait_gone(str(tmp_path / "ckpt")) == []

    # The adapter loads with peft onto the base model, its trained LoRA weights in place.
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny.ensure_tiny(str(store_dir), "llava", 0), local_files_only=True)
    with tempfile.TemporaryDirectory() as d:
        for blob, name in ((result.adapter, "adapter_model.safetensors"), (result.adapter_config, "adapter_config.json")):
            with open(store.path_of(blob.sha256), "rb") as src, open(os.path.join(d, name), "wb") as dst:
                dst.write(src.read())
        model = PeftModel.from_pretrained(base, d)
    lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b.values())


def test_a_sigkilled_rank_fails_the_call_naming_it_and_leaves_no_process(trainer, store_dir, tmp_path):
    store = Store(str(store_dir))
    since = LogSince(trainer)
    marker = str(tmp_path / "ckpt")
    killed = {}

    def kill_rank_1_once_both_run() -> None:
        # As soon as both trainers run (they are still loading the model: the call is seconds
        # in, not a whole step), so the test does not pay for a step it does not need.
        deadline = time.monotonic() + 120
        while sorted(pids := since.rank_pids()) != [0, 1]:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        running = processes_with(marker)
        killed.update(pid=pids[1], all=list(pids.values()) + running, both_ran=all(p in running for p in pids.values()))
        os.kill(pids[1], signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_1_once_both_run, daemon=True)
    killer.start()
    with pytest.raises(grpc.RpcError) as failed:
        for r in pb_grpc.DpoTrainerServiceStub(trainer.channel).Train(request(store, tmp_path, max_steps=500), timeout=150):
            pass
    killer.join(timeout=10)
    error = failed.value
    assert killed and killed["both_ran"], (killed, error)
    assert error.code() == grpc.StatusCode.INTERNAL, error.details()
    assert f"rank 1 (pid {killed['pid']}) was killed by signal 9 (SIGKILL)" in error.details(), error.details()
    # Rank 0, both rank supervisors and accelerate: none left.
    assert wait_gone(marker) == []
    for pid in killed["all"]:
        assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/cmdline", "rb").read() == b""

    # The worker lives on and serves: Describe, and another Train call (a request it refuses
    # inside the call, after the model lock was taken).
    info = worker_pb2_grpc.WorkerServiceStub(trainer.channel).Describe(worker_pb2.DescribeRequest(), timeout=10).info
    assert info.pid == trainer.process.pid
    empty = request(store, tmp_path, max_steps=1, gpus=1)
    empty.dataset.CopyFrom(common_pb2.Blob(ref=store.put(b"", "application/jsonl")))
    with pytest.raises(grpc.RpcError) as refused:
        list(pb_grpc.DpoTrainerServiceStub(trainer.channel).Train(empty, timeout=60))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.value.details() == "the dataset has no pairs"


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, r"^deepspeed_config: file not found: \S+/ds\.json$"),
        ("{zero: 2", r"^deepspeed_config: \S+/ds\.json is not valid JSON: Expecting property name"),
        ('["zero_optimization"]', r"^deepspeed_config: \S+/ds\.json is not a JSON object$"),
        ('{"train_batch_size": "auto"}', r"^deepspeed_config: \S+/ds\.json has no zero_optimization\.stage \(0, 1 or 2\)$"),
        ('{"zero_optimization": {"stage": 4}}', r"^deepspeed_config: \S+/ds\.json: zero_optimization\.stage is 4; it must be 0, 1 or 2$"),
        ('{"zero_optimization": {"stage": 3}}', r"^deepspeed_config: \S+/ds\.json: zero_optimization\.stage 3 is not supported \(it partitions the LoRA weights"),
        # A valid config: DeepSpeed is for CUDA, and this worker computes on the CPU.
        ("configs/deepspeed-zero2.json", r"^deepspeed_config: DeepSpeed trains on CUDA devices; this worker computes on cpu \(leave deepspeed unset\)$"),
    ],
)
def test_a_deepspeed_config_is_checked_before_anything_is_launched(trainer, store_dir, tmp_path, content, expected):
    store = Store(str(store_dir))
    path = tmp_path / "ds.json"
    if content is not None:
        path.write_text((REPO_ROOT / content).read_text() if content.endswith(".json") else content)
    with pytest.raises(grpc.RpcError) as refused:
        list(pb_grpc.DpoTrainerServiceStub(trainer.channel).Train(request(store, tmp_path, max_steps=1, deepspeed_config=str(path)), timeout=30))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(expected, refused.value.details()), refused.value.details()
    # Refused before the launch: nothing was written or started.
    assert not (tmp_path / "ckpt").exists()
