"""DPO trainer: TRL's DPOTrainer on a vision-language model with LoRA (peft).

The reference model is the policy with its adapters disabled (TRL's behaviour with a
peft_config). Step metrics and checkpoints stream to the caller as they happen; the final
LoRA adapter (safetensors) and the metrics go into the store. A cancelled call (client
cancel, deadline, SIGTERM) stops at the next step boundary and saves a checkpoint, and
`resume` continues from the newest checkpoint in checkpoint_dir. The model family is the
model option "type"; "image-text-to-text" (the default) is any model transformers loads as
AutoModelForImageTextToText.

Options the paper's (POVID-derived) code used: lora.target_modules ["all-linear"] puts LoRA on
every linear layer of the language model (resolved to module names from the loaded model:
never the vision tower, the projector or the output head); optim.tf32 allows TF32 matmuls
(CUDA only); optim.gradient_checkpointing recomputes activations in the backward pass
(non-reentrant; TRL makes a peft model's inputs require grad). optim.max_length (unset: no
limit) is TRL's: its collator cuts each prompt+answer sequence to max_length from the end
(keep_start), so an over-long answer is truncated and still trains. A prompt (its image
tokens included) that alone fills max_length leaves its pair no answer tokens: no error,
no learning signal (TRL drops such pairs for text datasets only); a cut into the image
tokens fails the call with TRL's "max_length ... is too short" error.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import threading

from pds_dpo_workers.errors import FailedPrecondition, InvalidRequest, ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext
from pds_dpo_workers.models.spec import resolve, torch_dtype
from pds_dpo_workers.proto import common_pb2, dpo_trainer_pb2 as pb
from pds_dpo_workers.store import read_blob
from pds_dpo_workers.streaming import Cancelled

# The language model's attention projections (LLaVA: language_model.*.{q,k,v,o}_proj).
DEFAULT_TARGET_MODULES = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
ALL_LINEAR = "all-linear"
# Module name parts that are never the language model. POVID's find_all_linear_names skipped
# mm_projector, vision_tower and vision_resampler and dropped lm_head; transformers' own
# vision-language classes name theirs vision_tower / vision_model / visual and
# multi_modal_projector.
NOT_LANGUAGE_MODEL = frozenset(
    {"vision_tower", "vision_model", "visual", "vision_resampler", "mm_projector", "multi_modal_projector", "lm_head"}
)
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
# LLaVA's vision-to-language projector.
PROJECTOR = "multi_modal_projector"


def latest_checkpoint(directory: str) -> str | None:
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(directory, "checkpoint-*")) if (m := _CHECKPOINT.search(p))]
    return max(found)[1] if found else None


def check_request(req: pb.TrainRequest) -> None:
    """The request carries what the config requires (these have no default anywhere)."""
    required = {
        "checkpoint_dir": req.checkpoint_dir,
        "dpo.beta": req.dpo.beta,
        "optim.learning_rate": req.optim.learning_rate,
        "lora.r": req.lora.r,
        "lora.alpha": req.lora.alpha,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise InvalidRequest(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    if ALL_LINEAR in req.lora.target_modules and len(req.lora.target_modules) > 1:
        raise InvalidRequest(f"lora.target_modules: {ALL_LINEAR!r} stands alone (it already names every linear layer of the language model)")


def all_linear_names(model) -> list[str]:
    """Pure: the full names of every nn.Linear of the model's language model, for LoRA.

    POVID's find_all_linear_names, made exact: its suffixes ("q_proj", "fc1") also matched
    the vision tower's layers of those names, so the names here are the modules' full names.
    The language model is the module the model's get_decoder() returns (LLaVA and LLaVA-NeXT:
    model.language_model); the vision tower, the projector and lm_head are never in it, and
    are left out by name too in case a model's get_decoder() is the whole model.
    """
    import torch

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    prefix = next((name for name, module in model.named_modules() if name and module is decoder), None)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and (prefix is None or name.startswith(prefix + "."))
        and not NOT_LANGUAGE_MODEL.intersection(name.split("."))
    ]
    if not names:
        raise InvalidRequest(f"lora.target_modules {ALL_LINEAR!r}: {type(model).__name__} has no linear layer in its language model")
    return sorted(names)


def target_modules(req: pb.TrainRequest, model) -> list[str] | str:
    """What peft's LoraConfig.target_modules gets: the request's names or regex, ["all-linear"]
    resolved against the loaded model, or the default (the language model's attention)."""
    requested = list(req.lora.target_modules)
    if requested == [ALL_LINEAR]:
        return all_linear_names(model)
    return requested or DEFAULT_TARGET_MODULES


def dpo_config_kwargs(req: pb.TrainRequest, device: str) -> dict:
    """Pure: TRL DPOConfig keyword arguments from the wire request (see check_request).

    A field left unset (0 or "") gets the config's default (stages.train in
    src/config/schema.ts), so such a request trains as the config would; lora.dropout,
    for which 0 is a real value, is taken as sent.
    """
    o = req.optim
    precision = o.precision or "fp32"
    if precision in ("bf16", "fp16") and device == "cpu":
        raise InvalidRequest(f"precision {precision} needs a CUDA device; use fp32 on CPU")
    if o.tf32 and device != "cuda":
        raise InvalidRequest(f"tf32 needs a CUDA device; set optim.tf32 false on {device}")
    return {
        "output_dir": req.checkpoint_dir,
        "beta": req.dpo.beta,
        "loss_type": [req.dpo.loss_type or "sigmoid"],
        "learning_rate": o.learning_rate,
        "lr_scheduler_type": o.scheduler or "cosine",
        # transformers 5: a float in [0, 1) is a ratio of the total steps.
        "warmup_steps": float(o.warmup_ratio),
        "num_train_epochs": o.epochs or 1,
        "max_steps": o.max_steps if o.max_steps > 0 else -1,
        "per_device_train_batch_size": o.batch_size or 1,
        "gradient_accumulation_steps": o.grad_accumulation or 1,
        "max_length": o.max_length or None,
        # numpy's RNG takes 32-bit seeds; derived item seeds are 48-bit.
        "seed": int(req.seed) % 2**32,
        "data_seed": int(req.seed) % 2**32,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        # Unset: torch's own TF32 settings stay as they are (transformers would turn TF32 off for False).
        "tf32": True if o.tf32 else None,
        # transformers 5 names gradient checkpointing activation_checkpointing (gradient_checkpointing
        # is its deprecated alias, which TRL's DPOConfig defaults to True): set explicitly, so an
        # unset field means off, as the config's default says. Non-reentrant, stated rather than
        # left to the library's default: it needs no input that requires grad (LoRA's base is
        # frozen), and DDP's search for unused parameters works with it.
        "activation_checkpointing": o.gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if o.gradient_checkpointing else None,
        "use_cpu": device == "cpu",
        "save_strategy": "steps",
        "save_steps": req.checkpoint_every or 50,
        "logging_steps": 1,
        "report_to": [],
        "disable_tqdm": True,
    }


def load_pairs(data: bytes, image_root: str):
    """pairs.jsonl -> a datasets.Dataset with decoded images (paths relative to image_root)."""
    from datasets import Image, List, load_dataset

    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        if not rows:
            raise InvalidRequest("the dataset has no pairs")
        ds = load_dataset("json", data_files=path, split="train").select_columns(["images", "prompt", "chosen", "rejected"])
        ds = ds.map(lambda r: {"images": [p if os.path.isabs(p) else os.path.join(image_root, p) for p in r["images"]]})
        for p in {p for r in ds["images"] for p in r}:
            if not os.path.isfile(p):
                raise InvalidRequest(f"dataset image not found: {p}")
        return ds.cast_column("images", List(Image()))
    finally:
        os.unlink(path)


def run_training(req: pb.TrainRequest, model_dir: str, ctx: WorkerContext, send, cancel: threading.Event) -> None:
    """One training process (also each rank under accelerate). `send` gets every TrainResponse."""
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    os.makedirs(req.checkpoint_dir, exist_ok=True)
    dataset = load_pairs(read_blob(ctx.store, req.dataset), req.image_root)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(
        model_dir, local_files_only=True, dtype=torch_dtype(ctx.spec, ctx.device)
    )
    projector_lr = req.optim.projector_learning_rate
    lora = LoraConfig(
        r=req.lora.r,
        lora_alpha=req.lora.alpha,
        lora_dropout=req.lora.dropout,
        target_modules=target_modules(req, model),
        # As in the paper: the projector is trained in full, at its own learning rate.
        modules_to_save=[PROJECTOR] if projector_lr > 0 else None,
        task_type="CAUSAL_LM",
    )

    class Trainer(DPOTrainer):
        def create_optimizer(self, *args, **kwargs):
            if projector_lr > 0 and self.optimizer is None:
                named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
                groups = [
                    {"params": [p for n, p in named if PROJECTOR not in n]},
                    {"params": [p for n, p in named if PROJECTOR in n], "lr": projector_lr},
                ]
                cls, kw = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = cls([g for g in groups if g["params"]], **kw)
            return super().create_optimizer(*args, **kwargs)

    class Relay(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and k != "epoch"}
            if "loss" in numbers:
                send(pb.TrainResponse(step=pb.StepMetrics(step=state.global_step, epoch=state.epoch or 0.0, metrics=numbers)))

        def on_save(self, args, state, control, **kw):
            path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            send(pb.TrainResponse(checkpoint=pb.CheckpointSaved(step=state.global_step, path=path)))

        def on_step_end(self, args, state, control, **kw):
            send(pb.TrainResponse(progress=common_pb2.Progress(done=state.global_step, total=state.max_steps, unit="steps")))
            if cancel.is_set():
                control.should_save = True
                control.should_training_stop = True

    trainer = Trainer(
        model=model,
        args=DPOConfig(**dpo_config_kwargs(req, ctx.device)),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora,
        callbacks=[Relay()],
    )
    checkpoint = latest_checkpoint(req.checkpoint_dir) if req.resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    if not trainer.is_world_process_zero():
        return  # under accelerate, rank 0 alone writes the adapter and reports
    interrupted = cancel.is_set()
    with tempfile.TemporaryDirectory() as out:
        trainer.model.save_pretrained(out)
        with open(os.path.join(out, "adapter_model.safetensors"), "rb") as f:
            adapter = ctx.store.put(f.read(), "application/vnd.safetensors")
        with open(os.path.join(out, "adapter_config.json"), "rb") as f:
            adapter_config = ctx.store.put(f.read(), "application/json")
    history = "".join(json.dumps(h, sort_keys=True) + "\n" for h in trainer.state.log_history)
    metrics = ctx.store.put(history.encode(), "application/jsonl")
    send(
        pb.TrainResponse(
            result=pb.TrainResult(
                adapter=adapter, adapter_config=adapter_config, metrics=metrics, steps=trainer.state.global_step, interrupted=interrupted
            )
        )
    )


def accelerate_command(python: str, req: pb.TrainRequest, request_path: str, store: str, model_json: str, device: str) -> list[str]:
    """Pure: the argv that runs training on req.gpus processes under accelerate."""
    cmd = [python, "-m", "accelerate.commands.launch", "--num_processes", str(req.gpus), "--num_machines", "1"]
    precision = {"bf16": "bf16", "fp16": "fp16"}.get(req.optim.precision, "no")
    cmd += ["--mixed_precision", precision]
    if req.deepspeed_config:
        cmd += ["--use_deepspeed", "--deepspeed_config_file", req.deepspeed_config]
    else:
        cmd += ["--multi_gpu"]
    cmd += ["-m", "pds_dpo_workers.train_entry", "--request", request_path, "--store", store, "--model", model_json, "--device", device]
    return cmd


def launch_distributed(req: pb.TrainRequest, ctx: WorkerContext, send, cancel: threading.Event) -> None:
    """Runs training under accelerate and relays rank 0's events (one base64 TrainResponse a line)."""
    import base64
    import signal
    import subprocess
    import sys

    from google.protobuf import json_format

    if ctx.store is None:
        raise InvalidRequest("multi-GPU training needs the shared store")
    os.makedirs(req.checkpoint_dir, exist_ok=True)
    request_path = os.path.join(req.checkpoint_dir, "train-request.pb")
    with open(request_path, "wb") as f:
        f.write(req.SerializeToString())
    cmd = accelerate_command(sys.executable, req, request_path, ctx.store.root, json_format.MessageToJson(ctx.spec, indent=None), ctx.device)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, start_new_session=True)
    watcher = threading.Thread(target=lambda: cancel.wait() and proc.poll() is None and os.killpg(proc.pid, signal.SIGTERM), daemon=True)
    watcher.start()
    for line in proc.stdout:
        line = line.strip()
        if line.startswith(b"pdsdpo:"):
            send(pb.TrainResponse.FromString(base64.b64decode(line[len(b"pdsdpo:") :])))
    code = proc.wait()
    if code != 0 and not cancel.is_set():
        raise RuntimeError(f"distributed training exited with code {code} (see the worker log)")


class TrlImageTextToText:
    """TRL's DPOTrainer with LoRA on an image-text-to-text model, loaded fresh for every
    Train call (LoRA changes it)."""

    def __init__(self, ctx: WorkerContext) -> None:
        from transformers import AutoConfig, AutoProcessor

        self.ctx = ctx
        resolved = resolve(ctx.spec, ctx.cache_root)
        try:
            # Only what can fail early is checked here.
            config = AutoConfig.from_pretrained(resolved.directory, local_files_only=True)
            AutoProcessor.from_pretrained(resolved.directory, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load a vision-language model from {resolved.directory}: {e}") from None
        self.directory = resolved.directory
        self.loaded = resolved.loaded_model((config.architectures or [type(config).__name__])[0])

    def train(self, req: pb.TrainRequest, send, cancel: threading.Event) -> None:
        if req.gpus > 1:
            launch_distributed(req, self.ctx, send, cancel)
        else:
            run_training(req, self.directory, self.ctx, send, cancel)


class DpoTrainer(Kind):
    BACKENDS = {"image-text-to-text": TrlImageTextToText}
    TITLE = "DPO trainer"
    backend: TrlImageTextToText

    def check(self, req: pb.TrainRequest) -> None:
        if self.ctx.store is None:
            raise FailedPrecondition("the trainer needs the shared store (--store)")
        check_request(req)

    def _run(self, req: pb.TrainRequest, emit, cancel: threading.Event) -> None:

        def send(message: pb.TrainResponse) -> None:
            # After a cancel nobody listens; training still stops and saves cleanly.
            if not cancel.is_set():
                try:
                    emit(message)
                except Cancelled:
                    pass

        self.backend.train(req, send, cancel)
