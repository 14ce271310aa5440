"""The ImageReward port (python_workers/pds_dpo_workers/models/image_reward.py) against the
original code of THUDM/ImageReward, on the tiny twin's checkpoint.

The original needs transformers 4 (its med.py imports helpers transformers 5 removed), timm,
fairscale and torchvision, so it runs in a second virtual environment, as a subprocess of
this script:

    python3.11 -m venv /tmp/ir-venv
    /tmp/ir-venv/bin/pip install torch==2.13.0 transformers==4.30.2 timm==0.6.13 numpy pillow
    /tmp/ir-venv/bin/pip install --no-deps fairscale==0.4.13
    git archive of THUDM/ImageReward's ImageReward/ folder -> /tmp/ir-src/ImageReward
    HF_HUB_OFFLINE=1 .venv/bin/python bench/image_reward_equivalence.py \
        --original-python /tmp/ir-venv/bin/python --original-src /tmp/ir-src --original-ref <commit>

What the original side changes, and only in size: the twin is not ViT-L/BERT-base, so
create_vit builds the original VisionTransformer (vit.py) at the twin's dimensions, MLP(768)
becomes the original MLP at the twin's text width, the preprocess is the original
_transform at the twin's image size, and init_tokenizer's BertTokenizer.from_pretrained(
"bert-base-uncased") reads the twin's vocab.txt (init_tokenizer then adds [DEC] and [ENC]
itself). The state dict is loaded with strict=True (the original uses strict=False), so the
twin's keys and shapes are shown to be exactly the original module's.

Compared: ImageReward.score (one pair at a time) and inference_rank (one prompt, several
images) of the original, against the port's batched score; the preprocessed tensors (at the
twin's 32 px and at ImageReward's 224 px) and the token ids. Writes
bench/results/image-reward-equivalence.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULT = os.path.join(HERE, "results", "image-reward-equivalence.json")
# Far below the 1e-4 first asked for: a port with the ViT's LayerNorm eps at BlipVisionConfig's
# default 1e-5 instead of timm's 1e-6 is off by 2.1e-5 here, which 1e-4 would let pass; float32
# noise between batched and one-at-a-time scoring is below 1e-6.
TOLERANCE = 5e-6

PROMPTS = [
    "a photo of a cat sitting on a wooden table next to a window in the morning light",
    "A Red vintage car, parked on a narrow street -- at night!",
    "a bowl of ramen",
    # Longer than max_length 35 tokens: truncated.
    " ".join(["a futuristic city skyline with flying vehicles neon signs and tall glass towers"] * 4),
    "zebra quokka xylophone",  # words outside the twin's vocabulary: WordPiece pieces / [UNK]
    "",
]
# (width, height, kind): square, wide, tall, smaller than the model's size (upscaled), noise and smooth.
IMAGES = [(48, 48, "noise"), (90, 40, "noise"), (30, 70, "smooth"), (20, 20, "smooth"), (32, 32, "noise"), (300, 200, "smooth")]


def make_images(directory: str) -> list[str]:
    import numpy as np
    from PIL import Image

    paths = []
    for n, (w, h, kind) in enumerate(IMAGES):
        rng = np.random.default_rng(n)
        if kind == "noise":
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            phase = rng.uniform(0, 6.28, size=3)
            pixels = np.stack([127.5 + 127.5 * np.sin(xx / w * 6 + yy / h * 3 + p) for p in phase], axis=-1).astype(np.uint8)
        path = os.path.join(directory, f"img{n}.png")
        Image.fromarray(pixels, mode="RGB").save(path)
        paths.append(path)
    return paths


# -- the original (runs under transformers 4) -------------------------------------------------


_TORCHVISION_DEF = None


def _declare_torchvision_ops() -> None:
    """Let torchvision import next to a CPU-only torch wheel.

    PyPI's torchvision wheels are CUDA builds: their C ops (_C.so) do not load beside the
    CPU torch wheel, torchvision then runs without ops (extension._has_ops() is False), but
    its _meta_registrations registers fakes for nms and qnms unconditionally, which fails on
    an undefined op. Declaring those two schemas lets the import finish. Nothing here uses a
    torchvision op: the transforms ImageReward uses (Resize, CenterCrop, ToTensor, Normalize)
    are pure Python on PIL images, and timm imports torchvision only for module attributes.
    """
    global _TORCHVISION_DEF
    import torch

    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    _TORCHVISION_DEF = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        _TORCHVISION_DEF.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision  # noqa: F401,F811


def run_original(src: str, model_dir: str, cases: dict) -> dict:
    import types

    import torch
    from PIL import Image

    _declare_torchvision_ops()
    sys.path.insert(0, src)
    # The package's __init__ files import CLIP, ReFL, diffusers: stub the two packages so only
    # the modules ImageReward itself uses are imported (their code runs unchanged).
    for name in ("ImageReward", "ImageReward.models"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(src, *name.split("."))]
        sys.modules[name] = pkg
    import transformers
    from ImageReward import ImageReward as ir_module
    from ImageReward.models.BLIP import blip, blip_pretrain, vit

    with open(os.path.join(model_dir, "med_config.json")) as f:
        med = json.load(f)
    state = torch.load(os.path.join(model_dir, "ImageReward.pt"), map_location="cpu")
    width = state["blip.visual_encoder.pos_embed"].shape[-1]
    patch = state["blip.visual_encoder.patch_embed.proj.weight"].shape[-1]
    grid = int(round((state["blip.visual_encoder.pos_embed"].shape[1] - 1) ** 0.5))
    depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("blip.visual_encoder.blocks."))
    image_size = grid * patch

    def create_vit(vit_name, _image_size, use_grad_checkpointing=False, ckpt_layer=0, drop_path_rate=0):
        encoder = vit.VisionTransformer(
            img_size=image_size, patch_size=patch, embed_dim=width, depth=depth, num_heads=width // 64,
            use_grad_checkpointing=use_grad_checkpointing, ckpt_layer=ckpt_layer, drop_path_rate=0.1,
        )  # fmt: skip
        return encoder, width

    class VocabBertTokenizer:
        @staticmethod
        def from_pretrained(name):
            assert name == "bert-base-uncased", name
            return transformers.BertTokenizer(vocab_file=os.path.join(model_dir, "vocab.txt"))

    blip_pretrain.create_vit = create_vit
    blip.BertTokenizer = VocabBertTokenizer
    original_mlp = ir_module.MLP
    ir_module.MLP = lambda input_size: original_mlp(med["hidden_size"])

    model = ir_module.ImageReward(med_config=os.path.join(model_dir, "med_config.json"), device="cpu")
    model.load_state_dict(state, strict=True)
    model.preprocess = ir_module._transform(image_size)
    model.eval()

    images = [Image.open(p) for p in cases["images"]]
    out = {"pairs": [], "rank": [], "pixels": [], "pixels_224": [], "token_ids": []}
    with torch.no_grad():
        for prompt, path in cases["pairs"]:
            out["pairs"].append(model.score(prompt, Image.open(path)))
        for prompt in cases["rank_prompts"]:
            _, rewards = model.inference_rank(prompt, images)
            out["rank"].append(rewards)
    big = ir_module._transform(224)
    for img in images:
        out["pixels"].append(model.preprocess(img).tolist())
        out["pixels_224"].append(big(img).flatten()[::97].tolist())
    for prompt in cases["prompts"]:
        ids = model.blip.tokenizer(prompt, padding="max_length", truncation=True, max_length=35).input_ids
        out["token_ids"].append(ids)
    import timm

    out["versions"] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "timm": timm.__version__,
    }
    try:
        import fairscale
        import torchvision

        out["versions"] |= {"torchvision": torchvision.__version__, "fairscale": fairscale.__version__}
    except ImportError:
        pass
    return out


# -- the port (runs under this project's environment) -----------------------------------------


def run_port(model_dir: str, cases: dict) -> dict:
    import torch
    import transformers
    from PIL import Image

    from pds_dpo_workers.models.image_reward import load_image_reward, preprocess

    model, _ = load_image_reward(model_dir)
    images = [Image.open(p) for p in cases["images"]]
    rgb = [img.convert("RGB") for img in images]
    out = {"pairs": [], "pairs_one_by_one": [], "rank": [], "pixels": [], "pixels_224": [], "token_ids": []}
    prompts, paths = zip(*cases["pairs"])
    by_path = dict(zip(cases["images"], rgb))
    # The worker scores a batch of (prompt, image) pairs at once.
    out["pairs"] = model.score(list(prompts), [by_path[p] for p in paths])[1]
    out["pairs_one_by_one"] = [model.score([p], [by_path[path]])[1][0] for p, path in cases["pairs"]]
    for prompt in cases["rank_prompts"]:
        out["rank"].append(model.score([prompt] * len(rgb), rgb)[1])
    for img in images:
        out["pixels"].append(preprocess(img, model.image_size).tolist())
        out["pixels_224"].append(preprocess(img, 224).flatten()[::97].tolist())
    for prompt in cases["prompts"]:
        out["token_ids"].append(model.tokenizer(prompt, padding="max_length", truncation=True, max_length=35).input_ids)
    out["versions"] = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__}
    return out


def max_abs_diff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original-python", default="/tmp/ir-venv/bin/python")
    parser.add_argument("--original-src", default="/tmp/ir-src", help="a folder holding THUDM/ImageReward's ImageReward/ package")
    parser.add_argument("--original-ref", default="", help="the THUDM/ImageReward commit the source is from (recorded)")
    parser.add_argument("--side", choices=["compare", "original"], default="compare")
    parser.add_argument("--model", help="(original side) the twin's directory")
    parser.add_argument("--cases", help="(original side) the cases JSON")
    parser.add_argument("--out", default=RESULT)
    args = parser.parse_args()

    if args.side == "original":
        with open(args.cases) as f:
            cases = json.load(f)
        json.dump(run_original(args.original_src, args.model, cases), sys.stdout)
        return 0

    sys.path.insert(0, os.path.join(REPO, "python_workers"))
    from pds_dpo_workers.models import tiny

    with tempfile.TemporaryDirectory(prefix="ir-equiv-") as tmp:
        model_dir = tiny.ensure_tiny(tmp, "image-reward", 0)
        images = make_images(tmp)
        pairs = [[PROMPTS[n % len(PROMPTS)], images[n % len(images)]] for n in range(len(images))]
        pairs += [[PROMPTS[(n + 2) % len(PROMPTS)], images[n]] for n in range(len(images))]
        cases = {"images": images, "pairs": pairs, "rank_prompts": PROMPTS[:2], "prompts": PROMPTS}
        cases_path = os.path.join(tmp, "cases.json")
        with open(cases_path, "w") as f:
            json.dump(cases, f)
        started = time.monotonic()
        proc = subprocess.run(
            [args.original_python, os.path.abspath(__file__), "--side", "original", "--original-src", args.original_src,
             "--model", model_dir, "--cases", cases_path],
            capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
        )  # fmt: skip
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return 1
        original = json.loads(proc.stdout)
        port = run_port(model_dir, cases)
        elapsed = time.monotonic() - started
        with open(os.path.join(model_dir, "ImageReward.pt"), "rb") as f:
            import hashlib

            checkpoint_sha256 = hashlib.sha256(f.read()).hexdigest()

    diffs = {
        "score_batched_vs_original_score": max_abs_diff(port["pairs"], original["pairs"]),
        "score_one_by_one_vs_original_score": max_abs_diff(port["pairs_one_by_one"], original["pairs"]),
        "score_batched_vs_original_inference_rank": max_abs_diff(port["rank"], original["rank"]),
        "pixels_at_32px": max_abs_diff(port["pixels"], original["pixels"]),
        "pixels_at_224px_sampled": max_abs_diff(port["pixels_224"], original["pixels_224"]),
    }
    token_ids_equal = port["token_ids"] == original["token_ids"]
    passed = token_ids_equal and all(v < TOLERANCE for v in diffs.values())
    result = {
        "what": "ImageReward port (transformers BlipVisionModel + BlipTextModel + MLP head) vs the original "
        "ImageReward module (BLIP vit.py + med.py + ImageReward.py), same tiny-twin checkpoint loaded strict=True into the original",
        "twin": {"builder": "image-reward", "seed": 0, "builder_version": tiny.BUILDER_VERSION, "ImageReward.pt_sha256": checkpoint_sha256},
        "original_ref": args.original_ref,
        "compared": {
            "pairs": len(pairs),
            "rank_prompts": len(cases["rank_prompts"]),
            "images": [f"{w}x{h} {k}" for w, h, k in IMAGES],
            "prompts": PROMPTS,
        },
        "scores": {"original": original["pairs"], "port": port["pairs"]},
        "max_abs_diff": diffs,
        "token_ids_equal": token_ids_equal,
        "tolerance": TOLERANCE,
        "tolerance_note": "a port with the ViT LayerNorm eps at 1e-5 (BlipVisionConfig default) instead of 1e-6 (timm) "
        "differs by 2.1e-5 on these cases; the tolerance is set below that, above float32 batching noise",
        "passed": passed,
        "versions": {"original": original["versions"], "port": port["versions"]},
        "seconds": round(elapsed, 1),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps({"passed": passed, "max_abs_diff": diffs, "token_ids_equal": token_ids_equal}, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
