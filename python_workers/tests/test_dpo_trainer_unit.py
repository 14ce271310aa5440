"""The trainer's pure parts: DPOConfig arguments, checkpoints, the accelerate launch argv,
all-linear LoRA names; and one in-process step with the paper's options."""

import json

import pytest

from pds_dpo_workers.errors import InvalidRequest
from pds_dpo_workers.kinds.dpo_trainer import (
    DEFAULT_TARGET_MODULES,
    accelerate_command,
    all_linear_names,
    check_request,
    dpo_config_kwargs,
    latest_checkpoint,
    run_training,
    target_modules,
)
from pds_dpo_workers.models import tiny
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


# -- the paper's trainer options: tf32, gradient checkpointing, all-linear LoRA, max_length ----


def test_tf32_is_for_cuda_only_and_unset_leaves_torch_alone():
    assert dpo_config_kwargs(request(tf32=True), "cuda")["tf32"] is True
    assert dpo_config_kwargs(request(), "cuda")["tf32"] is None
    with pytest.raises(InvalidRequest, match=r"^tf32 needs a CUDA device; set optim.tf32 false on cpu$"):
        dpo_config_kwargs(request(tf32=True), "cpu")


def test_gradient_checkpointing_is_explicit_and_non_reentrant():
    on = dpo_config_kwargs(request(gradient_checkpointing=True), "cpu")
    assert on["activation_checkpointing"] is True and on["activation_checkpointing_kwargs"] == {"use_reentrant": False}
    off = dpo_config_kwargs(request(), "cpu")
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
    with safe_open(store.path_of(result.adapter.sha256), "pt") as f:
        adapted = {k.split(".lora_")[0] for k in f.keys() if ".lora_" in k}
    assert sorted(a.removeprefix("base_model.model.") for a in adapted) == expected
