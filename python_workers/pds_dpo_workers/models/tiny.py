"""Tiny models built offline with random weights.

Each builder makes a real model of a real architecture (diffusers UNet/VAE + CLIP text
encoder, CLIPModel, ...) at toy size, seeded, and `save_pretrained`s it. Workers then load
the saved directory through the library's own `from_pretrained`, exactly as they load real
weights on a CUDA host. Bump BUILDER_VERSION when any builder's output changes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

BUILDER_VERSION = 4

# A fixed corpus for the toy tokenizer: deterministic, and covering the words of prompts.
_CORPUS = """
a photo of a cat sitting on a wooden table next to a window in the morning light
an oil painting of a mountain lake at sunset with pine trees and a small boat
a red vintage car parked on a narrow street in an old european city at night
a bowl of ramen with egg noodles green onions and slices of pork on a dark table
a futuristic city skyline with flying vehicles neon signs and tall glass towers
a classroom with wooden desks a green chalkboard and children raising their hands
a snowy village street decorated for the winter holiday with lights and a tree
a thunderstorm over wheat fields with lightning and dark heavy clouds
a close up of a sunflower with a bee collecting pollen in bright summer sun
a factory floor with robotic arms welding car frames under bright lamps
a woman wearing a long blue coat and a wide hat walking through a park in autumn
a cozy living room with a sofa a fireplace bookshelves and a sleeping dog
describe the image in detail what is happening and why what colors do you see
how many people are there is there a tree in the picture what is the weather like
yes no yes no is this answer accurate and faithful to the image reply yes or no
"""


_ASSET = os.path.join(os.path.dirname(__file__), "assets", "tiny-clip-bpe.json")


def train_tiny_bpe() -> dict:
    """Train the toy CLIP-style byte-level BPE with the tokenizers library.

    BPE training breaks ties between equally frequent merges in hash order, so two
    trainings can differ; the result is therefore trained once and kept as an asset
    (`python -m pds_dpo_workers.models.tiny`), which every build then reads.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), "removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line.strip()], trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, list) else m.split(" ") for m in model["merges"]]
    return {"vocab": model["vocab"], "merges": merges}


def _save_clip_tokenizer(out_dir: str) -> None:
    from transformers import CLIPTokenizer

    with open(_ASSET) as f:
        bpe = json.load(f)
    merges = [tuple(m) for m in bpe["merges"]]
    CLIPTokenizer(vocab=bpe["vocab"], merges=merges, model_max_length=77).save_pretrained(out_dir)


def _seed_all(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _text_encoder_config(vocab_size: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        projection_dim=32,
    )


def _build_sd(out_dir: str, seed: int, variant: str = "") -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tok_dir = os.path.join(out_dir, "_tok")
    _save_clip_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True)
    shutil.rmtree(tok_dir)
    _seed_all(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(_text_encoder_config(len(tokenizer)))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    # Degenerate variants: real pipelines whose decoder yields NaN or black pixels,
    # so the defect checks are exercised through the real stack.
    with torch.no_grad():
        if variant == "nan":
            vae.decoder.conv_out.bias.fill_(float("nan"))
        elif variant == "black":
            vae.decoder.conv_out.weight.zero_()
            vae.decoder.conv_out.bias.fill_(-10.0)
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)


def _build_clip_scorer(out_dir: str, seed: int, variant: str = "") -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer, CLIPVisionConfig

    _save_clip_tokenizer(out_dir)
    tokenizer = CLIPTokenizer.from_pretrained(out_dir, local_files_only=True)
    _seed_all(seed)
    text = _text_encoder_config(len(tokenizer))
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=32)
    model = CLIPModel(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)


# LLaVA-1.5 style chat template: "USER: <image>\n{question} ASSISTANT: {answer}</s>".
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
_LM_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


def _word_bpe_tokenizer():
    """A byte-level BPE whose merges spell out the corpus words, built without training.

    Deterministic by construction (sorted words, left-to-right merges), so a tiny language
    model samples real words instead of byte noise.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    vocab = {t: i for i, t in enumerate(_LM_SPECIALS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    merges = []
    words = sorted({w for line in _CORPUS.split() for w in [line.strip().lower()] if w})
    def add(left: str, right: str) -> str:
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
        return left + right

    space = byte_level.pre_tokenize_str(" ")[0][0]
    for word in words:
        symbols = byte_level.pre_tokenize_str(word)[0][0]
        cur = symbols[0]
        for ch in symbols[1:]:
            cur = add(cur, ch)
        # " word" is one token too: the space symbol merged onto the whole word.
        add(space, cur)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        chat_template=LLAVA_CHAT_TEMPLATE,
    )


def _tiny_llama_config(tokenizer, **extra):
    """A two-layer Llama over `tokenizer`; `extra` adds or overrides config fields."""
    from transformers import LlamaConfig

    fields = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return LlamaConfig(**(fields | extra))


def llava_fields(tokenizer, vision, text) -> dict:
    """What a LLaVA config of either generation (LlavaConfig, LlavaNextConfig) takes alike:
    the towers, the image token, the projector and which vision features feed it."""
    return {
        "vision_config": vision.to_dict(),
        "text_config": text.to_dict(),
        "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
        "projector_hidden_act": "gelu",
        "vision_feature_select_strategy": "default",
        "vision_feature_layer": -2,
    }


def _build_llava(out_dir: str, seed: int, variant: str = "") -> None:
    """LLaVA-1.5 architecture (CLIP vision tower, MLP projector, Llama LM) at toy size.

    variant "mute": its generation config suppresses every token but end-of-sequence, so
    it always answers "" (a real failure mode the pair policy must survive).
    """
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _word_bpe_tokenizer()
    _seed_all(seed)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32
    )
    text = _tiny_llama_config(tokenizer, max_position_embeddings=1024)
    config = LlavaConfig(**llava_fields(tokenizer, vision, text))
    config.vision_config.model_type = "clip_vision_model"
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if variant == "mute":
        model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i != tokenizer.eos_token_id]
    model.save_pretrained(out_dir, safe_serialization=True)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)


def _build_reward(out_dir: str, seed: int) -> None:
    """A sequence-classification reward model (Llama, one label), text only like ArmoRM."""
    from transformers import LlamaForSequenceClassification

    tokenizer = _word_bpe_tokenizer()
    tokenizer.padding_side = "right"
    _seed_all(seed)
    config = _tiny_llama_config(tokenizer, max_position_embeddings=2048, num_labels=1)
    LlamaForSequenceClassification(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


Builder = Callable[[str, int], None]

BUILDERS: dict[str, Builder] = {
    "sd": lambda out, seed: _build_sd(out, seed),
    "sd-nan": lambda out, seed: _build_sd(out, seed, "nan"),
    "sd-black": lambda out, seed: _build_sd(out, seed, "black"),
    "clip-scorer": _build_clip_scorer,
    "llava": _build_llava,
    "llava-mute": lambda out, seed: _build_llava(out, seed, "mute"),
    "reward": _build_reward,
}

# The twins of the paper's model families, one module each; they build on the helpers above.
from pds_dpo_workers.models import twin_armorm, twin_diffusion, twin_image_reward, twin_llama, twin_llava_next  # noqa: E402

for _family in (twin_diffusion, twin_image_reward, twin_llava_next, twin_armorm, twin_llama):
    BUILDERS.update(_family.BUILDERS)


TINY_CACHE_ENV = "PDS_DPO_TINY_CACHE"


def tiny_root(cache_root: str) -> str:
    """Where tiny models are built: $PDS_DPO_TINY_CACHE, else once per machine under the user's
    cache ($XDG_CACHE_HOME or ~/.cache, pds-dpo/tiny), as the hub's cache holds real weights;
    under cache_root (the store) only where there is no home. Containers set the variable to
    their store, which outlives them."""
    if os.environ.get(TINY_CACHE_ENV):
        return os.environ[TINY_CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    if not base.startswith("~"):
        return os.path.join(base, "pds-dpo", "tiny")
    return os.path.join(cache_root, "models", "tiny")


def tiny_dir(cache_root: str, name: str, seed: int) -> str:
    return os.path.join(tiny_root(cache_root), f"{name}-seed{seed}-v{BUILDER_VERSION}")


def ensure_tiny(cache_root: str, name: str, seed: int) -> str:
    """Build the tiny model once into the cache and return its directory."""
    if name not in BUILDERS:
        from pds_dpo_workers.errors import InvalidModelSpec

        raise InvalidModelSpec(f"unknown tiny model {name!r}; known: {', '.join(sorted(BUILDERS))}")
    dest = tiny_dir(cache_root, name, seed)
    if os.path.isdir(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    from pds_dpo_workers.load_progress import step

    step(f"building the tiny model {name}")
    tmp = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=f".build-{name}-")
    try:
        BUILDERS[name](tmp, seed)
        try:
            os.rename(tmp, dest)
        except OSError:
            # Another worker finished the same build first; its copy is identical.
            if not os.path.isdir(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


if __name__ == "__main__":
    os.makedirs(os.path.dirname(_ASSET), exist_ok=True)
    with open(_ASSET, "w") as f:
        json.dump(train_tiny_bpe(), f, sort_keys=True)
        f.write("\n")
    print(f"wrote {_ASSET}")
