"""Workers vs the direct loop on full-size architectures with random weights.

Builds, with random weights and offline tokenizers, a Stable Diffusion 1.5-sized pipeline
(860M UNet, VAE, CLIP ViT-L text encoder) and a LLaVA-1.5-7B-sized model (CLIP ViT-L/336
vision tower, MLP projector, 7B Llama), saves them, and measures each worker kind twice
on the same request: as a worker process over gRPC (python -m pds_dpo_workers serve,
loaded from the saved directory like any `source: path` model) and in-process (the same
kind's compute called directly, no process, no RPC). Reports images/s, generated tokens/s
and DPO (LoRA) steps/s, and each side's load time.

--mode cuda: full size on one CUDA GPU (bf16); --mode cpu: the same code at toy size on the
CPU, so the script is known to work where no GPU is.
usage: python bench/gpu/gpu_bench.py --mode cuda|cpu --out results.json [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

MODES = {
    "cuda": dict(
        device="cuda", dtype="bfloat16", full=True, sd_images=16, sd_batch=4, sd_steps=20, sd_size=512,
        vlm_items=8, vlm_batch=8, max_new_tokens=64, dpo_pairs=8, dpo_steps=8,
    ),
    "cpu": dict(
        device="cpu", dtype="float32", full=False, sd_images=2, sd_batch=2, sd_steps=2, sd_size=64,
        vlm_items=2, vlm_batch=2, max_new_tokens=8, dpo_pairs=2, dpo_steps=3,
    ),
}


# Kinds whose request runs once untimed first, on both sides, so one-time CUDA costs (context,
# kernel loading, autotuning) are not counted as compute. The trainer loads its model inside
# each call; its steady steps/s is taken between steps instead.
WARM_UP = {"image-generator", "responder"}


def log(msg: str) -> None:
    print(f"gpu-bench: {msg}", file=sys.stderr, flush=True)


def build_sd(out: str, full: bool, dtype) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from pds_dpo_workers.models import tiny

    tok_dir = os.path.join(out, "_tok")
    tiny._save_clip_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True)
    shutil.rmtree(tok_dir)
    torch.manual_seed(0)
    if full:  # Stable Diffusion 1.5's shapes
        unet = UNet2DConditionModel(
            sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512, layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
        text = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    else:
        unet = UNet2DConditionModel(
            sample_size=32, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64, attention_head_dim=8, norm_num_groups=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        vae = AutoencoderKL(
            block_out_channels=(32, 64), latent_channels=4, sample_size=64, norm_num_groups=8,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        )
        text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipe.to(dtype=dtype)
    pipe.save_pretrained(out, safe_serialization=True)


def build_llava(out: str, full: bool, dtype, device: str) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from pds_dpo_workers.models import tiny

    tokenizer = tiny._word_bpe_tokenizer()
    image_size, patch = (336, 14) if full else (32, 8)
    if full:  # LLaVA-1.5-7B's shapes: CLIP ViT-L/14-336 and Llama-2-7B
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, image_size=336, patch_size=14, projection_dim=768)
        text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
    else:
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32)
        text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    text.bos_token_id, text.eos_token_id, text.pad_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    config = LlavaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu", vision_feature_select_strategy="default", vision_feature_layer=-2,
    )
    config.vision_config.model_type = "clip_vision_model"
    torch.manual_seed(0)
    # Built directly on the device in the target dtype: a 7B model in fp32 on the CPU would take minutes.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    del model
    LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=tiny.LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(out)


def requests(m: dict, store, work: str):
    """The same request objects for the worker and the direct call."""
    import numpy as np
    from PIL import Image

    from pds_dpo_workers.proto import common_pb2, dpo_trainer_pb2, image_generator_pb2, responder_pb2

    gen = image_generator_pb2.GenerateRequest(
        items=[
            image_generator_pb2.ImageGenerationItem(id=f"img-{i}", prompt=f"a photo of a red bicycle number {i}", guidance_scale=7.5, steps=m["sd_steps"], width=m["sd_size"], height=m["sd_size"], seed=i)
            for i in range(m["sd_images"])
        ],
        output=common_pb2.OUTPUT_MODE_STORE, max_batch_size=m["sd_batch"],
    )
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(work, "images"), exist_ok=True)
    refs = []
    for i in range(max(m["vlm_items"], m["dpo_pairs"])):
        path = os.path.join(work, "images", f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (336, 336, 3), dtype=np.uint8)).save(path)
        with open(path, "rb") as f:
            refs.append(store.put(f.read(), "image/png"))
    decoding = responder_pb2.Decoding(max_new_tokens=m["max_new_tokens"], num_samples=1)
    respond = responder_pb2.RespondRequest(
        items=[responder_pb2.RespondItem(id=f"q{i}", image=common_pb2.Blob(ref=refs[i]), instruction="<image>\nDescribe this image in detail.", seed=i, decoding=decoding) for i in range(m["vlm_items"])],
        max_batch_size=m["vlm_batch"],
    )
    lines = [
        json.dumps({"id": f"p{i}", "images": [f"images/p{i}.png"], "prompt": [{"role": "user", "content": "Describe this image."}],
                    "chosen": [{"role": "assistant", "content": "A detailed and faithful description of the scene."}],
                    "rejected": [{"role": "assistant", "content": "A vague answer that mentions things not there."}]})
        for i in range(m["dpo_pairs"])
    ]
    dataset = store.put(("\n".join(lines) + "\n").encode(), "application/jsonl")

    def train(tag: str):
        return dpo_trainer_pb2.TrainRequest(
            dataset=common_pb2.Blob(ref=dataset), image_root=work,
            lora=dpo_trainer_pb2.LoraConfig(r=8, alpha=16), dpo=dpo_trainer_pb2.DpoConfig(beta=0.1),
            optim=dpo_trainer_pb2.OptimConfig(learning_rate=1e-5, max_steps=m["dpo_steps"], batch_size=1, grad_accumulation=1, precision="bf16" if m["device"] == "cuda" else "fp32"),
            seed=1, checkpoint_dir=os.path.join(work, f"ckpt-{tag}"), checkpoint_every=0, gpus=1,
        )

    return gen, respond, train


def summarize(kind: str, stamped: list, seconds: float) -> dict:
    """Rates from the (arrival time, response) pairs of one call."""
    responses = [r for _, r in stamped]
    if kind == "image-generator":
        n = sum(1 for r in responses if r.HasField("image") and not r.image.HasField("error"))
        return {"images": n, "images_per_s": n / seconds}
    if kind == "responder":
        toks = sum(r.response.num_tokens for r in responses if r.HasField("response"))
        return {"tokens": toks, "tokens_per_s": toks / seconds}
    # The trainer loads its model and builds TRL's trainer inside the call: steady steps/s
    # is taken between the first and the last step.
    times = [t for t, r in stamped if r.HasField("step")]
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    return {"steps": len(times), "steps_per_s": steady, "call_s_per_step": seconds / max(len(times), 1)}


def run_worker(kind: str, model_json: str, store_root: str, device: str, request) -> dict:
    import grpc

    from pds_dpo_workers.proto import dpo_trainer_pb2_grpc, image_generator_pb2_grpc, responder_pb2_grpc

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pds_dpo_workers", "serve", "--kind", kind, "--model", model_json, "--store", store_root, "--device", device, "--port", "0", "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE, stderr=open(os.path.join(store_root, f"{kind}.log"), "ab"), text=True,
    )
    port = None
    serving = False
    log_path = os.path.join(store_root, f"{kind}.log")
    try:
        for line in proc.stdout:
            ev = json.loads(line)
            if ev["event"] == "listening":
                port = ev["port"]
            elif ev["event"] == "serving":
                serving = True
                break
            elif ev["event"] == "load_failed":
                raise RuntimeError(f"{kind} worker failed to load: {ev['message']}")
        if not serving:
            with open(log_path) as f:
                tail = f.read().strip().splitlines()[-3:]
            raise RuntimeError(f"{kind} worker exited before serving: {' | '.join(tail)}")
        start_s = time.perf_counter() - t0
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        call = {
            "image-generator": lambda: image_generator_pb2_grpc.ImageGeneratorServiceStub(channel).Generate,
            "responder": lambda: responder_pb2_grpc.ResponderServiceStub(channel).Respond,
            "dpo-trainer": lambda: dpo_trainer_pb2_grpc.DpoTrainerServiceStub(channel).Train,
        }[kind]()
        if kind in WARM_UP:
            for _ in call(request, timeout=1800):
                pass
        t1 = time.perf_counter()
        stamped = [(time.perf_counter(), r) for r in call(request, timeout=1800)]
        seconds = time.perf_counter() - t1
        channel.close()
        return {"load_s": start_s, "compute_s": seconds, **summarize(kind, stamped, seconds)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_direct(kind: str, model_json: str, store, device: str, request) -> dict:
    import gc

    import torch

    from pds_dpo_workers.kinds import load_kind
    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.models.spec import parse_spec

    t0 = time.perf_counter()
    impl = load_kind(kind).create(WorkerContext(spec=parse_spec(model_json), store=store, cache_root=store.root, device=device))
    impl.load()
    load_s = time.perf_counter() - t0
    if kind in WARM_UP:
        impl._run(request, lambda r: None, threading.Event())
    stamped: list = []
    t1 = time.perf_counter()
    impl._run(request, lambda r: stamped.append((time.perf_counter(), r)), threading.Event())
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t1
    del impl
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"load_s": load_s, "compute_s": seconds, **summarize(kind, stamped, seconds)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(MODES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work")
    args = ap.parse_args()
    m = MODES[args.mode]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from pds_dpo_workers.environment import device_info, make_deterministic
    from pds_dpo_workers.store import Store

    if m["device"] == "cuda" and not torch.cuda.is_available():
        print("gpu-bench: --mode cuda needs a CUDA GPU; use --mode cpu", file=sys.stderr)
        return 2
    make_deterministic()
    work = args.work or tempfile.mkdtemp(prefix="pdsdpo-gpu-bench-")
    store = Store(os.path.join(work, "store"))
    os.makedirs(store.root, exist_ok=True)
    dtype = getattr(torch, m["dtype"])
    result: dict = {"benchmark": "gpu", "mode": args.mode, "settings": m, "device": str(device_info()).replace("\n", " "), "torch": torch.__version__, "cases": {}}

    t = time.perf_counter()
    log("building the Stable Diffusion pipeline (random weights)")
    build_sd(os.path.join(work, "sd"), m["full"], dtype if m["device"] == "cuda" else torch.float32)
    log("building the LLaVA model (random weights)")
    build_llava(os.path.join(work, "llava"), m["full"], dtype, m["device"])
    result["build_s"] = time.perf_counter() - t
    gen, respond, train = requests(m, store, work)
    spec = lambda name: json.dumps({"source": "MODEL_SOURCE_PATH", "path": os.path.join(work, name), "dtype": m["dtype"]})  # noqa: E731
    cases = [("image-generator", "sd", lambda tag: gen), ("responder", "llava", lambda tag: respond), ("dpo-trainer", "llava", train)]
    for kind, model, req in cases:
        for side in ("worker", "direct"):
            log(f"{kind}: {side}")
            fn = run_worker if side == "worker" else run_direct
            where = store.root if side == "worker" else store
            result["cases"].setdefault(kind, {})[side] = fn(kind, spec(model), where, m["device"], req(f"{kind}-{side}"))
        w, d = result["cases"][kind]["worker"], result["cases"][kind]["direct"]
        result["cases"][kind]["worker_vs_direct_compute"] = w["compute_s"] / d["compute_s"]
    result["total_s"] = time.perf_counter() - t
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result["cases"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
