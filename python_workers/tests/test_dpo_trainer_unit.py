"""The trainer's pure parts: DPOConfig arguments, checkpoints, the accelerate launch argv."""

import pytest

from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds.dpo_trainer import accelerate_command, check_request, dpo_config_kwargs, latest_checkpoint
from pds_dpo_workers.proto import dpo_trainer_pb2 as pb


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


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")


def test_accelerate_command_ddp_and_deepspeed():
    req = request(precision="bf16")
    assert accelerate_command("/py", req, "/ckpt/r.pb", "/store", "{}", "cuda") == [
        "/py", "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "bf16", "--multi_gpu",
        "-m", "pds_dpo_workers.train_entry", "--request", "/ckpt/r.pb", "--store", "/store", "--model", "{}", "--device", "cuda",
    ]
    req.deepspeed_config = "/cfg/deepspeed-zero2.json"
    cmd = accelerate_command("/py", req, "/ckpt/r.pb", "/store", "{}", "cuda")
    assert cmd[cmd.index("--mixed_precision") + 2 : cmd.index("--mixed_precision") + 5] == ["--use_deepspeed", "--deepspeed_config_file", "/cfg/deepspeed-zero2.json"]
    assert "--multi_gpu" not in cmd
