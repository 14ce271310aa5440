"""ImageReward (THUDM, Xu et al. 2023) ported onto transformers' own BLIP classes.

The `image-reward` package (1.5) does not run on transformers 5, so this loads its checkpoint
into the classes transformers ported BLIP to: ImageReward is BLIP's ViT (blip.visual_encoder,
timm-style) -> BlipVisionModel, BLIP's med.py BERT with cross-attention (blip.text_encoder)
-> BlipTextModel, and an MLP head (mlp.layers) -> ImageRewardHead here. A model directory is
what THUDM/ImageReward holds on the hub: ImageReward.pt (the original module's state dict)
and med_config.json (the text encoder's BertConfig).

Scoring follows ImageReward.score: the prompt through BertTokenizer (padding to max_length
35, truncation), the image Resize(n, bicubic) + CenterCrop(n) + ToTensor + Normalize(CLIP
mean/std) (done here with Pillow and torch, as torchvision does it), image embeds from the
ViT, the text encoder over the prompt with cross-attention to them, the [CLS] state through
the MLP: the raw reward r, and the score (r - mean) / std with ImageReward's mean and std.

Numerics of the mapping: the ViT's LayerNorms are timm's with eps 1e-6 (BlipVisionConfig's
default is 1e-5), its qkv has a bias (BLIP's vit.py default qkv_bias=True; so does
BlipAttention's), its GELU is nn.GELU, the exact erf form ("gelu" in transformers), and the
images are at the checkpoint's own resolution, so position embeddings are never interpolated.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import torch

from pds_dpo_workers.errors import ModelLoadError

CHECKPOINT = "ImageReward.pt"
MED_CONFIG = "med_config.json"
# ImageReward.py: the reward's normalization over its training distribution.
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_LENGTH = 35
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# BLIP's ViT-B and ViT-L both use 64-wide heads; the checkpoint does not record the count.
VIT_HEAD_DIM = 64
VIT_LAYER_NORM_EPS = 1e-6
# Files of a BERT tokenizer, on the hub or in a directory.
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Keys of the original module that scoring does not use: BLIP's contrastive projections, and
# med.py's position_ids buffer (always arange; transformers rebuilds it).
UNUSED_KEYS = re.compile(r"^blip\.(vision_proj|text_proj)\.(weight|bias)$|^blip\.text_encoder\.embeddings\.position_ids$")

_VIT_RENAMES = [
    (re.compile(r"^cls_token$"), "embeddings.class_embedding"),
    (re.compile(r"^pos_embed$"), "embeddings.position_embedding"),
    (re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"embeddings.patch_embedding.\1"),
    (re.compile(r"^blocks\.(\d+)\.norm1\.(weight|bias)$"), r"encoder.layers.\1.layer_norm1.\2"),
    (re.compile(r"^blocks\.(\d+)\.norm2\.(weight|bias)$"), r"encoder.layers.\1.layer_norm2.\2"),
    (re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$"), r"encoder.layers.\1.self_attn.qkv.\2"),
    (re.compile(r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$"), r"encoder.layers.\1.self_attn.projection.\2"),
    (re.compile(r"^blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$"), r"encoder.layers.\1.mlp.\2.\3"),
    (re.compile(r"^norm\.(weight|bias)$"), r"post_layernorm.\1"),
]


@dataclass
class MappedState:
    """The original state dict split onto the port's modules, by their own key names."""

    vision: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)
    head: dict = field(default_factory=dict)
    # Original keys read and deliberately not used (UNUSED_KEYS).
    unused: list[str] = field(default_factory=list)


def _vit_key(key: str) -> str | None:
    for pattern, replacement in _VIT_RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def map_state_dict(state: dict) -> MappedState:
    """Every key of an ImageReward state dict -> its place in the port; unknown keys fail.

    The original loads with strict=False, which would silently drop a key of an architecture
    variant this port does not know (e.g. relative position embeddings); here it is an error.
    """
    out = MappedState()
    unknown = []
    for key, value in state.items():
        if UNUSED_KEYS.match(key):
            if key.endswith("position_ids") and not torch.equal(value.flatten(), torch.arange(value.numel(), dtype=value.dtype)):
                raise ModelLoadError(f"{key} in {CHECKPOINT} is not 0..n-1: position ids this port does not support")
            out.unused.append(key)
        elif key.startswith("blip.visual_encoder."):
            new = _vit_key(key[len("blip.visual_encoder.") :])
            (unknown.append(key) if new is None else out.vision.__setitem__(new, value))
        elif key.startswith("blip.text_encoder."):
            # transformers' BlipTextModel keeps med.py's module names.
            out.text[key[len("blip.text_encoder.") :]] = value
        elif re.match(r"^mlp\.layers\.\d+\.(weight|bias)$", key):
            out.head[key[len("mlp.") :]] = value
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ModelLoadError(f"{CHECKPOINT} has keys this ImageReward port does not know: {shown}")
    return out


def vision_config_from(vision: dict):
    """BlipVisionConfig from the ViT's shapes: the checkpoint is the only record of them."""
    from transformers import BlipVisionConfig

    try:
        width, _, patch, _ = vision["embeddings.patch_embedding.weight"].shape
        positions = vision["embeddings.position_embedding"].shape[1]
        intermediate = vision["encoder.layers.0.mlp.fc1.weight"].shape[0]
    except (KeyError, ValueError) as e:
        raise ModelLoadError(f"{CHECKPOINT}: the visual encoder lacks {e} (not a BLIP ViT?)") from None
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise ModelLoadError(f"{CHECKPOINT}: pos_embed has {positions} positions, not 1 + a square grid")
    if width % VIT_HEAD_DIM:
        raise ModelLoadError(f"{CHECKPOINT}: ViT width {width} is not a multiple of the head dim {VIT_HEAD_DIM}")
    depth = 1 + max(int(k.split(".")[2]) for k in vision if k.startswith("encoder.layers."))
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=intermediate,
        num_hidden_layers=depth,
        num_attention_heads=width // VIT_HEAD_DIM,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=VIT_LAYER_NORM_EPS,
        attention_dropout=0.0,
    )


def text_config_from(med: dict, encoder_width: int, tokenizer=None):
    """BlipTextConfig from med_config.json (a BertConfig); encoder_width is the ViT's width,
    as BLIP_Pretrain overrides it."""
    from transformers import BlipTextConfig

    if not med.get("add_cross_attention"):
        raise ModelLoadError(f"{MED_CONFIG} has no add_cross_attention: ImageReward's text encoder attends to the image")
    if med.get("position_embedding_type", "absolute") != "absolute":
        raise ModelLoadError(f"{MED_CONFIG}: position_embedding_type {med['position_embedding_type']!r} is not supported")
    try:
        return BlipTextConfig(
            vocab_size=med["vocab_size"],
            hidden_size=med["hidden_size"],
            encoder_hidden_size=encoder_width,
            intermediate_size=med["intermediate_size"],
            num_hidden_layers=med["num_hidden_layers"],
            num_attention_heads=med["num_attention_heads"],
            max_position_embeddings=med["max_position_embeddings"],
            hidden_act=med.get("hidden_act", "gelu"),
            layer_norm_eps=med.get("layer_norm_eps", 1e-12),
            pad_token_id=med.get("pad_token_id", 0),
            # Unused by the encoder; the tokenizer's, instead of BLIP's 30522/2/102 defaults.
            bos_token_id=getattr(tokenizer, "bos_token_id", None),
            eos_token_id=getattr(tokenizer, "sep_token_id", None),
            sep_token_id=getattr(tokenizer, "sep_token_id", None),
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            # BlipTextLayer builds its cross-attention only for a decoder; forward() is then
            # called with is_decoder=False, so the self-attention stays bidirectional as in
            # med.py's BertModel(mode="multimodal").
            is_decoder=True,
            use_cache=False,
        )
    except KeyError as e:
        raise ModelLoadError(f"{MED_CONFIG} lacks {e}") from None


class ImageRewardHead(torch.nn.Module):
    """ImageReward's MLP: Linear layers at the Sequential indices the checkpoint names, with no
    activation between them (the original's ReLUs are commented out); its Dropouts are
    identities at inference."""

    def __init__(self, head: dict) -> None:
        nn = torch.nn
        super().__init__()
        indices = sorted({int(k.split(".")[1]) for k in head})
        if not indices or any(f"layers.{i}.weight" not in head or f"layers.{i}.bias" not in head for i in indices):
            raise ModelLoadError(f"{CHECKPOINT}: the MLP head (mlp.layers.*) is missing or incomplete")
        modules = [nn.Identity() for _ in range(indices[-1] + 1)]
        for i in indices:
            n_out, n_in = head[f"layers.{i}.weight"].shape
            modules[i] = nn.Linear(n_in, n_out, device="meta")
        self.layers = nn.Sequential(*modules)
        if head[f"layers.{indices[-1]}.weight"].shape[0] != 1:
            raise ModelLoadError(f"{CHECKPOINT}: the MLP head does not end in one output")

    def forward(self, x):
        return self.layers(x)


def _load_into(module, state: dict, what: str) -> None:
    """state -> module, strictly: every parameter is given and nothing else."""
    result = module.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{CHECKPOINT}: the {what} does not match its config (missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def _tokenizer_dir(model_dir: str, option: str) -> tuple[str, bool]:
    """Where the BERT tokenizer is: (directory, whether it is outside the model directory).

    The model directory's own when it has one (the twin does; THUDM/ImageReward does not),
    else the model option "tokenizer": a hub repository at a pinned revision ("id@revision",
    e.g. google-bert/bert-base-uncased@<commit>, what ImageReward itself loads), or a local
    directory.
    """
    if any(os.path.isfile(os.path.join(model_dir, f)) for f in ("vocab.txt", "tokenizer.json")):
        return model_dir, False
    if not option:
        raise ModelLoadError(
            f"{model_dir} has no tokenizer (THUDM/ImageReward ships none): set the model option \"tokenizer\" "
            "to a BERT tokenizer, e.g. \"google-bert/bert-base-uncased@<commit>\" or a local directory"
        )
    if os.path.isdir(option):
        return os.path.abspath(option), True
    if "@" not in option:
        raise ModelLoadError(f"model option tokenizer={option!r} is neither a directory nor a hub id pinned as id@revision")
    repo_id, revision = option.rsplit("@", 1)
    if not repo_id or not revision:
        raise ModelLoadError(f"model option tokenizer={option!r} needs both a hub id and a pinned revision (id@revision)")
    from pds_dpo_workers.models.spec import hf_snapshot

    # Only the tokenizer's files: the whole repository is gigabytes of weights.
    try:
        return hf_snapshot(repo_id, revision, allow_patterns=list(TOKENIZER_FILES)), True
    except ModelLoadError as e:
        raise ModelLoadError(f"the tokenizer {e}") from None


def load_tokenizer(directory: str):
    """BertTokenizer with ImageReward's two added tokens, as its init_tokenizer adds them to
    bert-base-uncased ("[DEC]" bos, "[ENC]" extra; ids 30522 and 30523); a tokenizer that
    already has them (the twin's) is left as it is."""
    from transformers import BertTokenizer

    if not any(os.path.isfile(os.path.join(directory, f)) for f in ("vocab.txt", "tokenizer.json")):
        # Without them BertTokenizer would quietly make a vocabulary of its five specials.
        raise ModelLoadError(f"{directory} holds no BERT tokenizer (neither vocab.txt nor tokenizer.json)")
    try:
        tokenizer = BertTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load a BERT tokenizer from {directory}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def _resize_bicubic(image, size: int):
    """torchvision Resize(size, BICUBIC) on a PIL image: the shorter side to `size`, the longer
    by int(size * long / short), no change when already that size."""
    from PIL import Image

    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), Image.BICUBIC)


def _center_crop(image, size: int):
    """torchvision CenterCrop(size) on a PIL image no smaller than size (after the resize)."""
    w, h = image.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def preprocess(image, size: int):
    """ImageReward's _transform(size) on a PIL image -> a float32 (3, size, size) tensor."""
    import numpy as np

    image = _center_crop(_resize_bicubic(image, size), size).convert("RGB")
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    x = pixels.to(torch.float32).div(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


class ImageReward:
    """A loaded ImageReward: `score(prompts, images)` -> (raw rewards, normalized scores)."""

    def __init__(self, vision, text, head, tokenizer, image_size: int, device: str) -> None:
        self.vision, self.text, self.head = vision, text, head
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.device = device

    def score(self, prompts: list[str], images: list) -> tuple[list[float], list[float]]:
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        pixels = torch.stack([preprocess(img, self.image_size) for img in images])
        with torch.no_grad():
            image_embeds = self.vision(pixel_values=pixels.to(self.device, self.vision.dtype)).last_hidden_state
            image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
            out = self.text(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
                encoder_hidden_states=image_embeds,
                encoder_attention_mask=image_atts,
                is_decoder=False,
            )
            raw = self.head(out.last_hidden_state[:, 0, :].float()).squeeze(-1)
            normalized = (raw - REWARD_MEAN) / REWARD_STD
        return raw.cpu().tolist(), normalized.cpu().tolist()


def read_checkpoint(directory: str) -> tuple[dict, dict]:
    """(the state dict of ImageReward.pt, med_config.json) from a model directory."""
    path = os.path.join(directory, CHECKPOINT)
    if not os.path.isfile(path):
        raise ModelLoadError(
            f"{directory} has no {CHECKPOINT}: an image-reward model directory holds {CHECKPOINT} and {MED_CONFIG} (as THUDM/ImageReward)"
        )
    config_path = os.path.join(directory, MED_CONFIG)
    if not os.path.isfile(config_path):
        raise ModelLoadError(f"{directory} has no {MED_CONFIG} (the text encoder's BertConfig, beside {CHECKPOINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is a load failure
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelLoadError(f"cannot read {path}: {type(e).__name__}: {first}") from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelLoadError(f"{path} is not a state dict of tensors")
    try:
        with open(config_path) as f:
            med = json.load(f)
    except ValueError as e:
        raise ModelLoadError(f"{config_path} is not JSON: {e}") from None
    return state, med


def load_image_reward(directory: str, *, device: str = "cpu", dtype=None, tokenizer: str = "") -> tuple[ImageReward, str | None]:
    """Load an ImageReward directory; returns the model and the tokenizer directory when the
    tokenizer came from outside the model directory (model option "tokenizer"), else None."""
    from transformers import BlipTextModel, BlipVisionModel

    state, med = read_checkpoint(directory)
    mapped = map_state_dict(state)
    vision_config = vision_config_from(mapped.vision)
    tok_dir, outside = _tokenizer_dir(directory, tokenizer)
    tok = load_tokenizer(tok_dir)
    text_config = text_config_from(med, vision_config.hidden_size, tok)
    if len(tok) > text_config.vocab_size:
        raise ModelLoadError(f"the tokenizer in {tok_dir} has {len(tok)} ids, more than the text encoder's {text_config.vocab_size}")
    # Built on the meta device and then given the checkpoint's tensors: no random init of
    # hundreds of millions of parameters only to overwrite them.
    with torch.device("meta"):
        vision = BlipVisionModel(vision_config)
        text = BlipTextModel(text_config, add_pooling_layer=False)
        head = ImageRewardHead(mapped.head)
    _load_into(vision, mapped.vision, "visual encoder")
    _load_into(text, mapped.text, "text encoder")
    _load_into(head, mapped.head, "MLP head")
    # The one non-persistent buffer, not in any state dict.
    text.embeddings.position_ids = torch.arange(text_config.max_position_embeddings).expand((1, -1))
    for module in (vision, text, head):
        left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if left:
            raise ModelLoadError(f"{CHECKPOINT}: nothing loaded into {left[:3]}")
    dtype = dtype or torch.float32
    vision = vision.to(device=device, dtype=dtype).eval()
    text = text.to(device=device, dtype=dtype).eval()
    # The head runs in float32, as ImageReward.score casts the [CLS] state with .float().
    head = head.to(device=device, dtype=torch.float32).eval()
    model = ImageReward(vision, text, head, tok, vision_config.image_size, device)
    return model, (tok_dir if outside else None)
