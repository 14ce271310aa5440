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

gpus > 1 trains on that many processes under `accelerate launch` (launch_distributed; one rank
is train_entry): DDP, over nccl on CUDA and gloo on CPU, or DeepSpeed with deepspeed_config
(checked before launch: a JSON object with a zero_optimization.stage of 0, 1 or 2). Each rank
trains on its shard of the pairs; rank 0 alone writes the adapter, the metrics and checkpoints
and reports, so the call streams exactly what the single-process path does. A rank that dies
fails the call naming it; a cancel stops every rank at the same step boundary with a checkpoint.

report_to ("tensorboard", "wandb") is TRL's report_to: TensorBoard event files go under
log_dir/tensorboard/, W&B's run under log_dir/wandb/, offline unless the worker's environment
sets WANDB_MODE (its key, if any, stays in that environment: nothing here reads or logs it).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from pds_dpo_workers import errors
from pds_dpo_workers.errors import FailedPrecondition, InvalidRequest, ModelLoadError, WorkerError
from pds_dpo_workers.kinds.base import Kind, WorkerContext
from pds_dpo_workers.load_progress import reporting, step
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
# ZeRO stages the trainer supports. Stage 3 partitions the weights across the ranks, LoRA's
# included, and the adapter is saved from rank 0's own copy: it would be saved empty.
ZERO_STAGES = (0, 1, 2)
# What report_to may name (TRL/transformers integrations the trainer sets up).
LOGGERS = ("tensorboard", "wandb")

log = logging.getLogger("pds_dpo_workers.dpo_trainer")


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
    unknown = [r for r in req.report_to if r not in LOGGERS]
    if unknown:
        raise InvalidRequest(f"report_to: unknown logger {unknown[0]!r} (known: {', '.join(LOGGERS)})")
    if req.report_to and not req.log_dir:
        raise InvalidRequest("log_dir is required when report_to is set")
    if ALL_LINEAR in req.lora.target_modules and len(req.lora.target_modules) > 1:
        raise InvalidRequest(f"lora.target_modules: {ALL_LINEAR!r} stands alone (it already names every linear layer of the language model)")


def check_paths(req: pb.TrainRequest, ctx: WorkerContext) -> None:
    """The request's own paths lie in the store or the worker's allowed roots: checked before
    anything touches them (the checkpoint directory is created, the DeepSpeed config read)."""
    ctx.confine(req.checkpoint_dir, "checkpoint_dir")
    if req.image_root:
        ctx.confine(req.image_root, "image_root")
    if req.deepspeed_config:
        ctx.confine(req.deepspeed_config, "deepspeed_config")
    if req.log_dir:
        ctx.confine(req.log_dir, "log_dir")


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
        # Several CPU ranks (accelerate's MULTI_CPU) talk over gloo; on CUDA accelerate picks nccl.
        "ddp_backend": "gloo" if device == "cpu" and req.gpus > 1 else None,
        "save_strategy": "steps",
        "save_steps": req.checkpoint_every or 50,
        "logging_steps": 1,
        "report_to": list(dict.fromkeys(req.report_to)),
        "disable_tqdm": True,
    }


def logging_environment(req: pb.TrainRequest, environ: Mapping[str, str]) -> dict[str, str]:
    """Pure: the variables transformers' loggers read for this request's report_to.

    TensorBoard writes to TENSORBOARD_LOGGING_DIR (transformers 5 has no logging_dir argument);
    W&B to WANDB_DIR, offline unless `environ` (the worker's environment) names a WANDB_MODE,
    under the project pds-dpo unless it names a WANDB_PROJECT.
    """
    env: dict[str, str] = {}
    if "tensorboard" in req.report_to:
        env["TENSORBOARD_LOGGING_DIR"] = os.path.join(req.log_dir, "tensorboard")
    if "wandb" in req.report_to:
        env["WANDB_DIR"] = req.log_dir
        if not environ.get("WANDB_MODE"):
            env["WANDB_MODE"] = "offline"
        if not environ.get("WANDB_PROJECT"):
            env["WANDB_PROJECT"] = "pds-dpo"
    return env


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Sets `values` in os.environ for the block (one training: the worker trains one call at a time)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def image_path(path: str, image_root: str) -> str:
    """Pure: where a dataset image is read from (an absolute path, or one relative to image_root)."""
    return path if os.path.isabs(path) else os.path.join(image_root, path)


def dataset_rows(data: bytes) -> list[dict]:
    """Pure: pairs.jsonl -> its rows; each names its images as a list of paths."""
    try:
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidRequest(f"the dataset is not JSON lines: {e}") from None
    for i, row in enumerate(rows):
        images = row.get("images") if isinstance(row, dict) else None
        if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
            raise InvalidRequest(f"dataset pair {i + 1}: images must be a list of paths")
    return rows


def check_dataset_paths(data: bytes, image_root: str, confine: Callable[[str, str], str]) -> None:
    """Every image path the dataset names, as load_pairs reads it, passes `confine`
    (WorkerContext.confine). The worker checks this before training starts, so the ranks
    of a distributed training (started without the worker's roots) get checked paths."""
    for i, row in enumerate(dataset_rows(data)):
        for p in row["images"]:
            confine(image_path(p, image_root), f"dataset pair {i + 1}: image")


def load_pairs(data: bytes, image_root: str):
    """pairs.jsonl -> a datasets.Dataset with decoded images (paths relative to image_root).

    Its image paths are confined by the worker beforehand (check_dataset_paths)."""
    from datasets import Image, List, load_dataset

    rows = dataset_rows(data)
    if not rows:
        raise InvalidRequest("the dataset has no pairs")
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        ds = load_dataset("json", data_files=path, split="train").select_columns(["images", "prompt", "chosen", "rejected"])
        ds = ds.map(lambda r: {"images": [image_path(p, image_root) for p in r["images"]]})
        for p in {p for r in ds["images"] for p in r}:
            if not os.path.isfile(p):
                raise InvalidRequest(f"dataset image not found: {p}")
        return ds.cast_column("images", List(Image()))
    finally:
        os.unlink(path)


def any_rank(flag: bool, args) -> bool:
    """True when `flag` is set on any rank (each rank's own flag when training alone).

    A stop must happen at the same step on every rank: a rank that stops alone leaves the
    others waiting in the next step's gradient all-reduce. Called by every rank at every
    step end, so the all-reduce lines up.
    """
    if args.world_size <= 1:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def run_training(req: pb.TrainRequest, model_dir: str, ctx: WorkerContext, send, cancel: threading.Event) -> None:
    """One training process (also each rank under accelerate). `send` gets every TrainResponse."""
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    os.makedirs(req.checkpoint_dir, exist_ok=True)

    def told(text: str, done: int, total: int) -> None:
        send(pb.TrainResponse(progress=common_pb2.Progress(done=done, total=total, unit=text)))

    # The call loads its own model (LoRA changes it): its steps are progress too, before the first step.
    with reporting(told):
        step("reading the dataset")
        dataset = load_pairs(read_blob(ctx.store, req.dataset), req.image_root)
        step("loading the model")
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

        def on_train_begin(self, args, state, control, train_dataloader=None, **kw):
            if args.world_size > 1:
                batches = len(train_dataloader) if train_dataloader is not None else "?"
                log.info("rank %d of %d: %s batches an epoch from its shard of %d pairs", args.process_index, args.world_size, batches, len(dataset))

        def on_step_end(self, args, state, control, **kw):
            send(pb.TrainResponse(progress=common_pb2.Progress(done=state.global_step, total=state.max_steps, unit="steps")))
            if any_rank(cancel.is_set(), args):
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kw):
            if args.world_size > 1:
                log.info("rank %d of %d: trained %d steps", args.process_index, args.world_size, state.global_step)

    # The loggers read their directories and modes as the trainer is built and as training starts.
    with environment(logging_environment(req, os.environ)):
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


def check_deepspeed_config(path: str) -> dict:
    """The DeepSpeed config file, read and checked before anything is launched: it exists,
    is a JSON object and names a ZeRO stage the trainer supports (zero_optimization.stage 0-2)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidRequest(f"deepspeed_config: file not found: {path}") from None
    except OSError as e:
        raise InvalidRequest(f"deepspeed_config: cannot read {path}: {e.strerror or e}") from None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise InvalidRequest(f"deepspeed_config: {path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise InvalidRequest(f"deepspeed_config: {path} is not a JSON object")
    zero = config.get("zero_optimization")
    if not isinstance(zero, dict) or "stage" not in zero:
        raise InvalidRequest(f"deepspeed_config: {path} has no zero_optimization.stage (0, 1 or 2)")
    stage = zero["stage"]
    if stage == 3 and not isinstance(stage, bool):
        raise InvalidRequest(
            f"deepspeed_config: {path}: zero_optimization.stage 3 is not supported (it partitions the LoRA weights, "
            "which rank 0 saves from its own copy); use stage 0, 1 or 2"
        )
    if isinstance(stage, bool) or stage not in ZERO_STAGES:
        raise InvalidRequest(f"deepspeed_config: {path}: zero_optimization.stage is {json.dumps(stage)}; it must be 0, 1 or 2")
    return config


def check_distributed(req: pb.TrainRequest, device: str) -> None:
    """What a training on req.gpus processes (or with DeepSpeed) needs, checked before launch."""
    if req.deepspeed_config:
        check_deepspeed_config(req.deepspeed_config)
        if device != "cuda":
            raise InvalidRequest(f"deepspeed_config: DeepSpeed trains on CUDA devices; this worker computes on {device} (leave deepspeed unset)")
    if req.gpus > 1 and device == "cuda":
        import torch

        count = torch.cuda.device_count()
        if count < req.gpus:
            raise FailedPrecondition(f"gpus: {req.gpus} processes need {req.gpus} CUDA devices; this worker sees {count}")
    if req.deepspeed_config and req.gpus > 1:
        from pds_dpo_workers.requirements import check_requirements

        check_requirements(["deepspeed"])


def accelerate_command(
    python: str, req: pb.TrainRequest, request_path: str, store: str, model_json: str, model_dir: str, device: str, *, cpu_threads: int = 1, worker_pid: int = 0
) -> list[str]:
    """Pure: the argv that runs training on req.gpus processes under accelerate.

    Without DeepSpeed it is accelerate's torchrun launcher (--multi_gpu) on CPU too: there
    each rank's TrainingArguments(use_cpu=True) makes accelerate's state MULTI_CPU over gloo
    (ddp_backend). --cpu would take accelerate's simple launcher, which starts one process
    (several only under mpirun). Port 0: accelerate picks a free port, so two trainings on
    one machine do not collide.
    """
    cmd = [python, "-m", "accelerate.commands.launch"]
    if req.deepspeed_config:
        cmd += ["--use_deepspeed", "--deepspeed_config_file", req.deepspeed_config]
    else:
        cmd += ["--multi_gpu"]
    precision = {"bf16": "bf16", "fp16": "fp16"}.get(req.optim.precision, "no")
    cmd += ["--num_processes", str(req.gpus), "--num_machines", "1", "--mixed_precision", precision]
    cmd += ["--dynamo_backend", "no", "--main_process_port", "0"]
    if device == "cpu":
        cmd += ["--num_cpu_threads_per_process", str(max(1, cpu_threads))]
    cmd += ["-m", "pds_dpo_workers.train_entry", "--request", request_path, "--store", store, "--model", model_json]
    cmd += ["--model-dir", model_dir, "--device", device, "--worker-pid", str(worker_pid)]
    return cmd


class DistributedTrainingFailed(WorkerError):
    code = "training_failed"


# After a cancel, how long the ranks get to reach a step boundary and save before they are killed.
CANCEL_GRACE_S = 600.0
# After a rank failed (the others are killed at once), how long accelerate gets to exit.
LAUNCHER_EXIT_S = 30.0


def describe_exit(status: int) -> str:
    """Pure: "was killed by signal 9 (SIGKILL)" / "exited with code 1"."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-status} ({name})"
    return f"exited with code {status}"


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Rank:
    def __init__(self, pid: int, pgid: int) -> None:
        self.pid = pid
        self.pgid = pgid
        self.status: int | None = None
        self.error: dict | None = None


def launch_distributed(req: pb.TrainRequest, ctx: WorkerContext, model_dir: str, send, cancel: threading.Event) -> None:
    """Runs training on req.gpus processes under accelerate, relaying rank 0's events.

    The worker supervises the ranks (see train_entry): it learns each rank's pid and process
    group as it starts and how it ended. A rank that fails (a signal, an exception) fails
    the call, naming the rank; the other ranks are killed at once (they would wait in a
    collective), then accelerate is waited for. A cancel sends every rank SIGTERM: they stop
    together at the next step boundary and save a checkpoint. Whatever happens, no rank and
    no launcher outlives the call.
    """
    import base64
    import queue
    import shlex

    from google.protobuf import json_format

    from pds_dpo_workers.train_entry import decode_error, parse

    if ctx.store is None:
        raise FailedPrecondition("distributed training needs the shared store")
    os.makedirs(req.checkpoint_dir, exist_ok=True)
    request_path = os.path.join(req.checkpoint_dir, "train-request.pb")
    with open(request_path, "wb") as f:
        f.write(req.SerializeToString())
    threads = 1
    if ctx.device == "cpu":
        import torch

        threads = max(1, torch.get_num_threads() // req.gpus)
    cmd = accelerate_command(
        sys.executable, req, request_path, ctx.store.root, json_format.MessageToJson(ctx.spec, indent=None), model_dir, ctx.device,
        cpu_threads=threads, worker_pid=os.getpid(),
    )  # fmt: skip
    # Its own process group (in the worker's session), so it and whatever it starts directly
    # can be killed together; torchrun puts each rank in a session of its own.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, process_group=0)
    log.info("distributed training: accelerate launch is pid %d: %s", proc.pid, shlex.join(cmd))
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    reader = threading.Thread(target=pump, name="train-ranks", daemon=True)
    reader.start()
    ranks: dict[int, _Rank] = {}
    failed: int | None = None  # the first rank that failed
    got_result = False
    cancelled_at = failed_at = exited_at = None
    eof = False

    def kill_ranks(sig: int) -> None:
        for r in ranks.values():
            _killpg(r.pgid, sig)

    try:
        while not eof:
            try:
                raw = lines.get(timeout=0.2)
            except queue.Empty:
                raw = b""
            if raw is None:
                eof = True
            elif raw:
                text, message = parse(raw.rstrip(b"\n"))
                if text.strip():
                    sys.stderr.buffer.write(text + b"\n")
                    sys.stderr.flush()
                if message is not None:
                    kind, rank, payload = message
                    if kind == "start":
                        pid, pgid = (int(x) for x in payload.split(","))
                        ranks[rank] = _Rank(pid, pgid)
                        log.info("distributed training: rank %d is pid %d (process group %d)", rank, pid, pgid)
                        if cancelled_at is not None:
                            _kill(pid, signal.SIGTERM)
                        if failed is not None:
                            _killpg(pgid, signal.SIGKILL)
                    elif kind == "event" and rank == 0:
                        response = pb.TrainResponse.FromString(base64.b64decode(payload))
                        got_result = got_result or response.WhichOneof("event") == "result"
                        send(response)
                    elif kind == "error" and rank in ranks:
                        ranks[rank].error = decode_error(payload)
                    elif kind == "exit" and rank in ranks:
                        status = int(payload.split(",")[1])
                        ranks[rank].status = status
                        if status != 0 and failed is None:
                            failed, failed_at = rank, time.monotonic()
                            log.error("distributed training: rank %d (pid %d) %s; stopping the other ranks", rank, ranks[rank].pid, describe_exit(status))
                            kill_ranks(signal.SIGKILL)
            now = time.monotonic()
            if cancel.is_set() and cancelled_at is None:
                cancelled_at = now
                log.info("distributed training: cancelled; asking %d ranks to stop at the next step boundary", len(ranks))
                for r in ranks.values():
                    _kill(r.pid, signal.SIGTERM)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
                # Normally every rank has ended by now; ranks orphaned by a killed launcher have not.
                kill_ranks(signal.SIGKILL)
            overdue = (
                (cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_S)
                or (failed_at is not None and now - failed_at > LAUNCHER_EXIT_S)
                or (exited_at is not None and now - exited_at > LAUNCHER_EXIT_S)
            )
            if overdue:
                log.warning("distributed training: the launcher or a rank did not stop in time; killing them")
                kill_ranks(signal.SIGKILL)
                _killpg(proc.pid, signal.SIGKILL)
                if exited_at is not None:
                    break  # something outside the ranks' groups holds the pipe open
    finally:
        if proc.poll() is None and not eof:
            # An exception here (e.g. in send): leave nothing behind.
            kill_ranks(signal.SIGKILL)
            _killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        kill_ranks(signal.SIGKILL)
        if eof:
            proc.stdout.close()  # else the reader thread still blocks on it; it is a daemon
    if failed is not None:
        r = ranks[failed]
        if cancel.is_set():
            log.warning("distributed training: rank %d %s after the cancel", failed, describe_exit(r.status))
            return
        if r.error is not None:
            error_class = getattr(errors, r.error.get("type", ""), None)
            if isinstance(error_class, type) and issubclass(error_class, WorkerError):
                raise error_class(r.error["message"])
            raise DistributedTrainingFailed(
                f"distributed training failed: rank {failed} (pid {r.pid}) raised {r.error.get('type')}: {r.error.get('message')}"
            )
        raise DistributedTrainingFailed(
            f"distributed training failed: rank {failed} (pid {r.pid}) {describe_exit(r.status)}; the other ranks were stopped"
        )
    if cancel.is_set():
        return
    if code != 0:
        raise DistributedTrainingFailed(f"distributed training failed: accelerate launch (pid {proc.pid}) {describe_exit(code)} (see the worker log)")
    if not got_result:
        raise DistributedTrainingFailed("distributed training ended without a result from rank 0 (see the worker log)")


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
            launch_distributed(req, self.ctx, self.directory, send, cancel)
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
        check_paths(req, self.ctx)
        check_distributed(req, self.ctx.device)
        if req.report_to:
            from pds_dpo_workers.requirements import check_requirements

            check_requirements(list(req.report_to))

    def _run(self, req: pb.TrainRequest, emit, cancel: threading.Event) -> None:
        # Off the event loop: the dataset is read (and its hash checked) here.
        check_dataset_paths(read_blob(self.ctx.store, req.dataset), req.image_root, self.ctx.confine)

        def send(message: pb.TrainResponse) -> None:
            # After a cancel nobody listens; training still stops and saves cleanly.
            if not cancel.is_set():
                try:
                    emit(message)
                except Cancelled:
                    pass

        self.backend.train(req, send, cancel)
