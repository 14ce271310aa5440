"""The trainer's pure parts: DPOConfig arguments, checkpoints, the accelerate launch argv, the
DeepSpeed config check, the ranks' protocol and the worker's side of it (against stand-in ranks),
all-linear LoRA names; and one in-process step with the paper's options."""

import json
import os
import re
from pathlib import Path

import pytest

from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds.dpo_trainer import (
    DEFAULT_TARGET_MODULES,
    DistributedTrainingFailed,
    accelerate_command,
    all_linear_names,
    check_deepspeed_config,
    check_distributed,
    check_request,
    describe_exit,
    dpo_config_kwargs,
    latest_checkpoint,
    logging_environment,
    run_training,
    target_modules,
)
from pds_dpo_workers.models import tiny
from pds_dpo_workers.proto import dpo_trainer_pb2 as pb
from pds_dpo_workers.train_entry import encode, parse
from worker_harness import processes_with


def request(**optim) -> pb.TrainRequest:
    return pb.TrainRequest(
        lora=pb.LoraConfig(r=8, alpha=16),
        dpo=pb.DpoConfig(beta=0.1, loss_type="sigmoid"),
        optim=pb.OptimConfig(learning_rate=1e-5, scheduler="cosine", warmup_ratio=0.03, epochs=2, batch_size=1, grad_accumulation=1, **optim),
        seed=2**40 + 7,
        checkpoint_dir="/ckpt",
        checkpoint_every=100,
        gpus=2,
    )


def test_dpo_config_from_the_paper_settings():
    kw = dpo_config_kwargs(request(precision="bf16"), "cuda")
    assert kw["beta"] == pytest.approx(0.1)
    assert kw["loss_type"] == ["sigmoid"]
    assert kw["learning_rate"] == pytest.approx(1e-5)
    assert kw["lr_scheduler_type"] == "cosine"
    assert kw["warmup_steps"] == pytest.approx(0.03)
    assert kw["num_train_epochs"] == 2 and kw["max_steps"] == -1
    assert kw["bf16"] is True and kw["fp16"] is False and kw["use_cpu"] is False
    assert kw["save_steps"] == 100 and kw["output_dir"] == "/ckpt"
    # 48-bit item seeds are folded into numpy's 32-bit range.
    assert kw["seed"] == (2**40 + 7) % 2**32


def test_max_steps_overrides_epochs_and_half_precision_needs_cuda():
    assert dpo_config_kwargs(request(max_steps=4), "cpu")["max_steps"] == 4
    with pytest.raises(InvalidRequest, match="bf16 needs a CUDA device"):
        dpo_config_kwargs(request(precision="bf16"), "cpu")


def test_unset_fields_get_the_config_defaults():
    # src/config/schema.ts, stages.train: scheduler cosine, checkpoint_every 50, loss_type
    # sigmoid, batch_size 1, grad_accumulation 1, warmup_ratio 0, precision fp32.
    req = pb.TrainRequest(lora=pb.LoraConfig(r=8, alpha=16), dpo=pb.DpoConfig(beta=0.1), optim=pb.OptimConfig(learning_rate=1e-5), checkpoint_dir="/ckpt")
    check_request(req)
    kw = dpo_config_kwargs(req, "cpu")
    assert kw["lr_scheduler_type"] == "cosine" and kw["save_steps"] == 50 and kw["loss_type"] == ["sigmoid"]
    assert kw["per_device_train_batch_size"] == 1 and kw["gradient_accumulation_steps"] == 1 and kw["warmup_steps"] == 0
    assert kw["bf16"] is False and kw["fp16"] is False
    # Unset epochs and max_steps: one epoch (the orchestrator's deadline assumes the same).
    assert kw["num_train_epochs"] == 1 and kw["max_steps"] == -1


def test_what_the_config_requires_has_no_fallback():
    check_request(request())
    with pytest.raises(InvalidRequest, match=r"^dpo.beta, optim.learning_rate, lora.r, lora.alpha are required$"):
        check_request(pb.TrainRequest(checkpoint_dir="/ckpt"))
    with pytest.raises(InvalidRequest, match=r"^checkpoint_dir is required$"):
        req = request()
        req.ClearField("checkpoint_dir")
        check_request(req)


def test_report_to_names_known_loggers_and_their_directory(monkeypatch):
    import importlib.util
    import sys

    from pds_dpo_workers.errors import MissingPackage
    from pds_dpo_workers.requirements import check_requirements

    req = request()
    req.report_to[:] = ["tensorboard", "wandb"]
    with pytest.raises(InvalidRequest, match=r"^log_dir is required when report_to is set$"):
        check_request(req)
    req.log_dir = "/runs/r1/train"
    check_request(req)
    assert dpo_config_kwargs(req, "cpu")["report_to"] == ["tensorboard", "wandb"]
    assert dpo_config_kwargs(request(), "cpu")["report_to"] == []
    # W&B offline and under the run's train/ unless the worker's environment says otherwise.
    assert logging_environment(req, {}) == {
        "TENSORBOARD_LOGGING_DIR": "/runs/r1/train/tensorboard",
        "WANDB_DIR": "/runs/r1/train",
        "WANDB_MODE": "offline",
        "WANDB_PROJECT": "pds-dpo",
    }
    assert "WANDB_MODE" not in logging_environment(req, {"WANDB_MODE": "online", "WANDB_API_KEY": "k"})
    assert logging_environment(request(), {}) == {}
    # W&B is an optional extra: without it the worker's load (--require wandb) fails on one line.
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    with pytest.raises(MissingPackage) as e:
        check_requirements(["tensorboard", "wandb"])
    assert str(e.value) == f"missing package in {sys.executable}: wandb (for train.report_to: wandb; pip install 'pds_dpo_workers[wandb]')"
    req.report_to.append("mlflow")
    with pytest.raises(InvalidRequest, match=r"^report_to: unknown logger 'mlflow' \(known: tensorboard, wandb\)$"):
        check_request(req)


def test_a_trainer_asked_for_wandb_without_it_fails_its_load_on_one_line(store_dir, log_dir):
    """The worker's preflight (--require wandb, from train.report_to) before any model loads."""
    import importlib.util

    from worker_harness import RESPONDER_MODEL, expect_load_failure

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    event, code, _ = expect_load_failure("dpo-trainer", RESPONDER_MODEL, store_dir, log_dir, extra_args=("--require", "wandb"))
    assert code == 3 and event["code"] == "missing_package"
    assert event["message"].endswith(": wandb (for train.report_to: wandb; pip install 'pds_dpo_workers[wandb]')") and "\n" not in event["message"]


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")


def test_accelerate_command_on_cuda_cpu_and_with_deepspeed():
    from accelerate.commands.launch import launch_command_parser

    from pds_dpo_workers.train_entry import arg_parser

    entry = ["-m", "pds_dpo_workers.train_entry", "--request", "/ckpt/r.pb", "--store", "/store", "--model", "{}", "--model-dir", "/models/llava"]
    req = request(precision="bf16")
    cuda = accelerate_command("/py", req, "/ckpt/r.pb", "/store", "{}", "/models/llava", "cuda", worker_pid=123)
    assert cuda == [
        "/py", "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no", "--main_process_port", "0",
        *entry, "--device", "cuda", "--worker-pid", "123",
    ]  # fmt: skip
    # CPU ranks: the same torchrun launcher (--cpu would start a single process), fp32, threads split.
    cpu = accelerate_command("/py", request(), "/ckpt/r.pb", "/store", "{}", "/models/llava", "cpu", cpu_threads=3, worker_pid=123)
    assert cpu == [
        "/py", "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        "--num_cpu_threads_per_process", "3",
        *entry, "--device", "cpu", "--worker-pid", "123",
    ]  # fmt: skip
    req.deepspeed_config = "/cfg/deepspeed-zero2.json"
    ds = accelerate_command("/py", req, "/ckpt/r.pb", "/store", "{}", "/models/llava", "cuda")
    assert ds[3:6] == ["--use_deepspeed", "--deepspeed_config_file", "/cfg/deepspeed-zero2.json"] and "--multi_gpu" not in ds
    # Both parsers take these argvs as meant.
    for cmd in (cuda, cpu, ds):
        launch = launch_command_parser().parse_args(cmd[3:])
        assert launch.num_processes == 2 and launch.main_process_port == 0 and launch.module and not launch.cpu
        assert launch.training_script == "pds_dpo_workers.train_entry"
        assert launch.multi_gpu == (cmd is not ds) and launch.use_deepspeed == (cmd is ds)
        rank = arg_parser().parse_args(launch.training_script_args)
        assert rank.model_dir == "/models/llava" and rank.request == "/ckpt/r.pb"
    assert launch_command_parser().parse_args(cpu[3:]).num_cpu_threads_per_process == 3


def test_cpu_ranks_talk_over_gloo():
    assert dpo_config_kwargs(request(), "cpu")["ddp_backend"] == "gloo"
    assert dpo_config_kwargs(request(), "cuda")["ddp_backend"] is None
    single = request()
    single.gpus = 1
    assert dpo_config_kwargs(single, "cpu")["ddp_backend"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("", "is not valid JSON"),
        ("[1]", "is not a JSON object"),
        ('{"zero_optimization": {}}', "has no zero_optimization.stage (0, 1 or 2)"),
        ('{"zero_optimization": 2}', "has no zero_optimization.stage"),
        ('{"zero_optimization": {"stage": "2"}}', 'zero_optimization.stage is "2"; it must be 0, 1 or 2'),
        ('{"zero_optimization": {"stage": true}}', "zero_optimization.stage is true"),
        ('{"zero_optimization": {"stage": 3}}', "zero_optimization.stage 3 is not supported (it partitions the LoRA weights"),
    ],
)
def test_a_deepspeed_config_needs_a_zero_stage(tmp_path, content, message):
    path = tmp_path / "ds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        check_deepspeed_config(str(path))


def test_deepspeed_and_gpus_are_checked_against_the_worker(tmp_path, monkeypatch):
    import importlib.util

    import torch

    from pds_dpo_workers.errors import FailedPrecondition, MissingPackage

    config = tmp_path / "ds.json"
    config.write_text((Path(__file__).resolve().parents[2] / "configs" / "deepspeed-zero2.json").read_text())
    assert check_deepspeed_config(str(config))["zero_optimization"]["stage"] == 2
    req = request()
    check_distributed(req, "cpu")  # two CPU ranks: nothing to check
    req.deepspeed_config = str(config)
    with pytest.raises(InvalidRequest, match=r"^deepspeed_config: DeepSpeed trains on CUDA devices; this worker computes on cpu"):
        check_distributed(req, "cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(FailedPrecondition, match=r"^gpus: 2 processes need 2 CUDA devices; this worker sees 1$"):
        check_distributed(req, "cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else find_spec(name, *a))
    with pytest.raises(MissingPackage, match=r"deepspeed \(for"):
        check_distributed(req, "cuda")


def test_rank_protocol_lines():
    line = encode("exit", 1, "1234,-9")
    assert line == b"@@pdsdpo:exit:1:1234,-9\n"
    assert parse(line.rstrip()) == (b"", ("exit", 1, "1234,-9"))
    # Text another process printed without a newline ends up before a whole protocol line.
    assert parse(b"partial " + line.rstrip()) == (b"partial ", ("exit", 1, "1234,-9"))
    assert parse(b"loss 0.69") == (b"loss 0.69", None)
    assert parse(b"@@pdsdpo:exit:one:x y") == (b"@@pdsdpo:exit:one:x y", None)
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(-15) == "was killed by signal 15 (SIGTERM)"
    assert describe_exit(1) == "exited with code 1"


# A stand-in for accelerate launch: two "ranks", each in a session of its own as torchrun
# starts them, that speak train_entry's protocol (their own exit lines included) and then
# behave as MODE says. It tests the worker's side of the protocol in a second.
FAKE_LAUNCHER = """
import subprocess, sys
procs = [subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2], str(r)], start_new_session=True) for r in range(2)]
sys.exit(max(abs(p.wait()) for p in procs))
"""
FAKE_RANK = """
import base64, json, os, signal, sys, time
from pds_dpo_workers.proto import dpo_trainer_pb2 as pb
from pds_dpo_workers.train_entry import encode

mode, rank = sys.argv[1], int(sys.argv[2])
out = lambda kind, payload: os.write(1, encode(kind, rank, payload))
def result(interrupted=False):
    r = pb.TrainResponse(result=pb.TrainResult(steps=3, interrupted=interrupted))
    out("event", base64.b64encode(r.SerializeToString()).decode())
def end(code):
    out("exit", f"{os.getpid()},{code}")
    sys.exit(code)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
out("start", f"{os.getpid()},{os.getpgid(0)}")
if mode == "ok":
    if rank == 0:
        result()
    end(0)
if mode == "no-result":
    end(0)
if mode == "error":
    if rank == 0:
        out("error", base64.b64encode(json.dumps({"type": "InvalidRequest", "message": "the dataset has no pairs"}).encode()).decode())
        end(1)
    time.sleep(600)  # waits in a collective for rank 0, forever
if mode == "crash":
    if rank == 0:
        out("error", base64.b64encode(json.dumps({"type": "RuntimeError", "message": "gloo: connection closed"}).encode()).decode())
        end(1)
    time.sleep(600)
if mode == "cancel":
    while not stop:
        time.sleep(0.05)
    if rank == 0:
        result(interrupted=True)
    end(0)
"""


def _fake_launch(tmp_path, monkeypatch, mode):
    import sys
    import threading

    from pds_dpo_workers.kinds import dpo_trainer
    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.models.spec import parse_spec
    from pds_dpo_workers.store import Store

    (tmp_path / "launcher.py").write_text(FAKE_LAUNCHER)
    (tmp_path / "rank.py").write_text(FAKE_RANK)
    marker = str(tmp_path / "rank.py")
    monkeypatch.setattr(dpo_trainer, "accelerate_command", lambda *a, **k: [sys.executable, str(tmp_path / "launcher.py"), marker, mode])
    ctx = WorkerContext(spec=parse_spec('{"source": "MODEL_SOURCE_TINY", "id": "llava"}'), store=Store(str(tmp_path / "store")), cache_root=str(tmp_path), device="cpu")
    req = request()
    req.checkpoint_dir = str(tmp_path / "ckpt")
    sent, cancel = [], threading.Event()
    return marker, lambda: dpo_trainer.launch_distributed(req, ctx, "/models/llava", sent.append, cancel), sent, cancel


def test_the_worker_relays_rank_0_and_fails_on_a_missing_result(tmp_path, monkeypatch):
    _, run, sent, _ = _fake_launch(tmp_path, monkeypatch, "ok")
    run()
    assert [r.result.steps for r in sent] == [3]
    _, run, sent, _ = _fake_launch(tmp_path, monkeypatch, "no-result")
    with pytest.raises(DistributedTrainingFailed, match=r"^distributed training ended without a result from rank 0"):
        run()


@pytest.mark.parametrize(
    "mode, error, message",
    [
        # A rank's WorkerError is the call's, as in the single-process path.
        ("error", InvalidRequest, r"^the dataset has no pairs$"),
        ("crash", DistributedTrainingFailed, r"^distributed training failed: rank 0 \(pid \d+\) raised RuntimeError: gloo: connection closed$"),
    ],
)
def test_a_failed_rank_fails_the_call_and_the_hung_one_is_killed(tmp_path, monkeypatch, mode, error, message):
    import time

    marker, run, _, _ = _fake_launch(tmp_path, monkeypatch, mode)
    started = time.monotonic()
    with pytest.raises(error, match=message):
        run()
    # Rank 1 would have slept for 10 minutes: its process group was killed.
    assert time.monotonic() - started < 30
    assert processes_with(marker) == []


def test_a_cancel_asks_every_rank_to_stop(tmp_path, monkeypatch):
    import threading
    import time

    marker, run, sent, cancel = _fake_launch(tmp_path, monkeypatch, "cancel")
    done = []
    t = threading.Thread(target=lambda: done.append(run()))
    t.start()
    deadline = time.monotonic() + 30
    while len(processes_with(marker)) < 3 and time.monotonic() < deadline:  # the launcher and two ranks
        time.sleep(0.05)
    cancel.set()  # a rank not yet known to the worker gets SIGTERM as it announces itself
    t.join(30)
    assert done == [None]
    assert [r.result.interrupted for r in sent] == [True]
    assert processes_with(marker) == []


# -- the paper's trainer options: tf32, gradient checkpointing, all-linear LoRA, max_length ----


def test_tf32_is_for_cuda_only_and_unset_leaves_torch_alone():
    assert dpo_config_kwargs(request(tf32=True), "cuda")["tf32"] is True
    assert dpo_config_kwargs(request(), "cuda")["tf32"] is None
    with pytest.raises(InvalidRequest, match=r"^tf32 needs a CUDA device; set optim.tf32 false on cpu$"):
        dpo_config_kwargs(request(tf32=True), "cpu")


def test_gradient_checkpointing_is_explicit_and_non_reentrant():
    # One process: a DPOConfig for several CPU ranks (gloo) is built inside a rank, where
    # torch.distributed is set up.
    single = request(gradient_checkpointing=True)
    single.gpus = 1
    on = dpo_config_kwargs(single, "cpu")
    assert on["activation_checkpointing"] is True and on["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    single.optim.gradient_checkpointing = False
    off = dpo_config_kwargs(single, "cpu")
    assert off["activation_checkpointing"] is False and off["activation_checkpointing_kwargs"] is None
    # TRL's DPOConfig defaults gradient_checkpointing to True; unset here means off, as the
    # config's default says (TRL reads args.gradient_checkpointing).
    from trl import DPOConfig

    assert DPOConfig(**off).gradient_checkpointing is False
    config = DPOConfig(**on)
    assert config.gradient_checkpointing is True and config.gradient_checkpointing_kwargs == {"use_reentrant": False}


def test_all_linear_stands_alone():
    req = request()
    req.lora.target_modules[:] = ["all-linear", "q_proj"]
    with pytest.raises(InvalidRequest, match="'all-linear' stands alone"):
        check_request(req)


def _meta_model(store_dir, name: str):
    """The twin's architecture on the meta device (names only, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(tiny.ensure_tiny(str(store_dir), name, 0), local_files_only=True)
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


@pytest.mark.parametrize("name", [n for n in ("llava", "llava-next") if n in tiny.BUILDERS])
def test_all_linear_is_every_linear_layer_of_the_language_model_only(store_dir, name):
    import torch

    model = _meta_model(store_dir, name)
    names = all_linear_names(model)
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert names == sorted(n for n in linear if n.startswith("model.language_model."))
    assert {n.rsplit(".", 1)[1] for n in names} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    left_out = linear - set(names)
    assert "lm_head" in left_out
    assert any(".multi_modal_projector." in f".{n}." for n in left_out)
    # The vision tower has q_proj/k_proj/v_proj too: POVID's bare suffixes would have matched them.
    assert any(n.startswith("model.vision_tower.") and n.endswith(".q_proj") for n in left_out)
    req = request()
    req.lora.target_modules[:] = ["all-linear"]
    assert target_modules(req, model) == names
    assert target_modules(request(), model) == DEFAULT_TARGET_MODULES
    req.lora.target_modules[:] = ["q_proj", "v_proj"]
    assert target_modules(req, model) == ["q_proj", "v_proj"]


def test_all_linear_with_gradient_checkpointing_trains_a_truncated_pair(store_dir, tmp_path, monkeypatch):
    """One step of the real training code (run_training, in-process), LoRA on all-linear with
    gradient checkpointing on, and a pair longer than max_length: it is cut, not fatal."""
    import threading

    import transformers.modeling_utils
    from safetensors import safe_open

    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.models.spec import parse_spec
    from pds_dpo_workers.proto import common_pb2
    from pds_dpo_workers.store import Store
    from worker_harness import png_bytes

    store = Store(str(store_dir))
    (tmp_path / "p0.png").write_bytes(png_bytes(seed=0))
    pair = {
        "id": "p0",
        "images": ["p0.png"],
        "prompt": [{"role": "user", "content": "What is in the picture?"}],
        # About 40 tokens after a 44-token prompt (16 of them the image's): over max_length.
        "chosen": [{"role": "assistant", "content": "a cat on a table " * 8}],
        "rejected": [{"role": "assistant", "content": "a red car at night"}],
    }
    max_length = 56
    req = pb.TrainRequest(
        dataset=common_pb2.Blob(ref=store.put((json.dumps(pair) + "\n").encode(), "application/jsonl")),
        image_root=str(tmp_path),
        lora=pb.LoraConfig(r=2, alpha=4, target_modules=["all-linear"]),
        dpo=pb.DpoConfig(beta=0.1),
        optim=pb.OptimConfig(learning_rate=1e-3, max_steps=1, batch_size=1, gradient_checkpointing=True, max_length=max_length),
        seed=5,
        checkpoint_dir=str(tmp_path / "ckpt"),
        checkpoint_every=1000,
        report_to=["tensorboard"],
        log_dir=str(tmp_path / "train"),
    )
    check_request(req)
    recomputed = []
    checkpoint = transformers.modeling_utils.checkpoint

    def spy(*args, **kwargs):
        recomputed.append(kwargs.get("use_reentrant"))
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", spy)
    model_dir = tiny.ensure_tiny(str(store_dir), "llava", 0)
    ctx = WorkerContext(spec=parse_spec('{"source": "MODEL_SOURCE_TINY", "id": "llava"}'), store=store, cache_root=str(store_dir), device="cpu")
    sent: list[pb.TrainResponse] = []
    run_training(req, model_dir, ctx, sent.append, threading.Event())

    # The decoder layers ran through (non-reentrant) checkpointing.
    assert recomputed and set(recomputed) == {False}
    (step,) = [r.step for r in sent if r.WhichOneof("event") == "step"]
    # The truncated answer still carries signal: log-probs and a non-zero gradient reach LoRA.
    assert step.metrics["grad_norm"] > 0 and step.metrics["logps/chosen"] < 0, dict(step.metrics)
    assert step.metrics["num_tokens"] <= 2 * max_length, dict(step.metrics)
    result = sent[-1].result
    assert result.steps == 1 and not result.interrupted
    adapter_config = json.loads(open(store.path_of(result.adapter_config.sha256)).read())
    expected = all_linear_names(_meta_model(store_dir, "llava"))
    assert sorted(adapter_config["target_modules"]) == expected
    # Before the first step, the call's own load is progress: what it does, and its weights N of M.
    first = next(i for i, r in enumerate(sent) if r.WhichOneof("event") == "step")
    loads = [r.progress for r in sent[:first] if r.WhichOneof("event") == "progress" and r.progress.unit != "steps"]
    assert [p.unit for p in loads[:2]] == ["reading the dataset", "loading the model"]
    weights = [p for p in loads if p.unit == "loading weights"]
    assert weights and weights[-1].done == weights[-1].total > 0
    # report_to tensorboard: the event file under log_dir/tensorboard/ holds the step's loss.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "train" / "tensorboard"))
    events.Reload()
    (loss,) = events.Scalars("train/loss")
    assert loss.step == 1 and loss.value == pytest.approx(step.metrics["loss"], rel=1e-5)
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ
    with safe_open(store.path_of(result.adapter.sha256), "pt") as f:
        adapted = {k.split(".lora_")[0] for k in f.keys() if ".lora_" in k}
    assert sorted(a.removeprefix("base_model.model.") for a in adapted) == expected
