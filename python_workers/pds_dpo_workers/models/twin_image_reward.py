"""Tiny twin of THUDM's ImageReward checkpoint (ImageReward.pt + med_config.json).

The hub repository THUDM/ImageReward holds two files: ImageReward.pt, the state dict of the
original `ImageReward` module (blip.visual_encoder.* a timm-style BLIP ViT, blip.text_encoder.*
BLIP's med.py BERT with cross-attention, blip.vision_proj/text_proj, mlp.layers.*), and
med_config.json, the BertConfig of the text encoder. The twin writes both in exactly that
format, with toy dimensions and seeded random weights, and adds what the hub repository lacks:
a BERT WordPiece tokenizer (vocab.txt, tokenizer.json, tokenizer_config.json), with "[DEC]"
as bos and "[ENC]" as an extra special token as ImageReward's init_tokenizer adds them.

The key names are written out here from the original architecture (vit.py, med.py,
ImageReward.py), not derived from the port's mapping (models/image_reward.py), so a mapping
mistake in the port cannot hide behind a twin made by the same mistake.
"""

from __future__ import annotations

import json
import os
from typing import Callable

_ASSET = os.path.join(os.path.dirname(__file__), "assets", "tiny-bert-wordpiece.txt")
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Toy dimensions. Vision width 128 keeps ImageReward's head dim of 64 (ViT-B/L: width // 64
# heads; the port infers heads by that rule), with 2 heads so the head split is exercised.
VISION = {"width": 128, "depth": 2, "patch": 8, "image_size": 32, "mlp_ratio": 4}
TEXT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 40}
# ImageReward's MLP(768) has hidden sizes 1024, 128, 64, 16, 1 with dropouts between
# (Sequential indices 0, 2, 4, 6, 7 are the Linear layers); the twin keeps them.
MLP_HIDDEN = (1024, 128, 64, 16, 1)
MLP_LINEAR_INDICES = (0, 2, 4, 6, 7)
EMBED_DIM = 256  # BLIP_Pretrain's vision_proj/text_proj width


def train_tiny_wordpiece(vocab_size: int = 400) -> list[str]:
    """Train a BERT WordPiece vocabulary on tiny.py's corpus with the tokenizers library.

    Training breaks ties between equally frequent merges in hash order, so two trainings in
    two processes differ; it is trained once and kept as an asset
    (`python -m pds_dpo_workers.models.twin_image_reward`), which every build reads.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    from pds_dpo_workers.models.tiny import _CORPUS

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIALS, show_progress=False)
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line.strip()], trainer=trainer)
    return [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]


def read_vocab() -> list[str]:
    with open(_ASSET, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def save_tokenizer(out_dir: str) -> int:
    """vocab.txt plus the tokenizer as transformers saves it; returns its length (ids)."""
    from transformers import BertTokenizer

    vocab = read_vocab()
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, model_max_length=512)
    # As ImageReward's init_tokenizer does to bert-base-uncased (30522 -> 30524 ids).
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    tokenizer.save_pretrained(out_dir)
    return len(tokenizer)


def _med_config(vocab_size: int) -> dict:
    # The fields of THUDM/ImageReward's med_config.json, at toy size.
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": TEXT["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": TEXT["intermediate_size"],
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": TEXT["max_position_embeddings"],
        "model_type": "bert",
        "num_attention_heads": TEXT["num_attention_heads"],
        "num_hidden_layers": TEXT["num_hidden_layers"],
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
        "encoder_width": VISION["width"],
        "add_cross_attention": True,
    }


def original_shapes(vocab_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of the original ImageReward module's state_dict, in its order."""
    w, depth, p = VISION["width"], VISION["depth"], VISION["patch"]
    n_pos = (VISION["image_size"] // p) ** 2 + 1
    hidden = w * VISION["mlp_ratio"]
    out: list[tuple[str, tuple[int, ...]]] = []

    def linear(name: str, n_in: int, n_out: int) -> None:
        out.extend([(f"{name}.weight", (n_out, n_in)), (f"{name}.bias", (n_out,))])

    def norm(name: str, n: int) -> None:
        out.extend([(f"{name}.weight", (n,)), (f"{name}.bias", (n,))])

    v = "blip.visual_encoder"
    out += [(f"{v}.cls_token", (1, 1, w)), (f"{v}.pos_embed", (1, n_pos, w))]
    out += [(f"{v}.patch_embed.proj.weight", (w, 3, p, p)), (f"{v}.patch_embed.proj.bias", (w,))]
    for i in range(depth):
        b = f"{v}.blocks.{i}"
        norm(f"{b}.norm1", w)
        linear(f"{b}.attn.qkv", w, 3 * w)
        linear(f"{b}.attn.proj", w, w)
        norm(f"{b}.norm2", w)
        linear(f"{b}.mlp.fc1", w, hidden)
        linear(f"{b}.mlp.fc2", hidden, w)
    norm(f"{v}.norm", w)

    t, h, inter = "blip.text_encoder", TEXT["hidden_size"], TEXT["intermediate_size"]
    out += [(f"{t}.embeddings.position_ids", (1, TEXT["max_position_embeddings"]))]
    out += [(f"{t}.embeddings.word_embeddings.weight", (vocab_size, h))]
    out += [(f"{t}.embeddings.position_embeddings.weight", (TEXT["max_position_embeddings"], h))]
    norm(f"{t}.embeddings.LayerNorm", h)
    for i in range(TEXT["num_hidden_layers"]):
        layer = f"{t}.encoder.layer.{i}"
        for part, kv_width in (("attention", h), ("crossattention", w)):
            linear(f"{layer}.{part}.self.query", h, h)
            linear(f"{layer}.{part}.self.key", kv_width, h)
            linear(f"{layer}.{part}.self.value", kv_width, h)
            linear(f"{layer}.{part}.output.dense", h, h)
            norm(f"{layer}.{part}.output.LayerNorm", h)
        linear(f"{layer}.intermediate.dense", h, inter)
        linear(f"{layer}.output.dense", inter, h)
        norm(f"{layer}.output.LayerNorm", h)
    linear("blip.vision_proj", w, EMBED_DIM)
    linear("blip.text_proj", h, EMBED_DIM)
    n_in = h
    for index, n_out in zip(MLP_LINEAR_INDICES, MLP_HIDDEN):
        linear(f"mlp.layers.{index}", n_in, n_out)
        n_in = n_out
    return out


def _build_image_reward(out_dir: str, seed: int) -> None:
    import torch

    vocab_size = save_tokenizer(out_dir)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in original_shapes(vocab_size):
        if key.endswith("position_ids"):
            # A persistent buffer of med.py's BertEmbeddings: saved in the original state dict.
            state[key] = torch.arange(shape[1]).expand(shape)
        elif key.endswith(".weight") and len(shape) == 1:  # LayerNorm gains around 1
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif key.startswith("mlp.") and key.endswith(".weight"):
            # Std 1 / sqrt(fan in), not ImageReward's initial 1 / (fan in + 1): through its
            # five linear layers that would shrink the score's spread over inputs to ~1e-6.
            state[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:
            state[key] = 0.05 * torch.randn(shape, generator=gen)
    # torch.save's archive is byte-reproducible (fixed zip timestamps; a content-derived
    # serialization id); its record prefix comes from the file name, the same on every build.
    torch.save(state, os.path.join(out_dir, "ImageReward.pt"))
    with open(os.path.join(out_dir, "med_config.json"), "w") as f:
        json.dump(_med_config(vocab_size), f, indent=2)
        f.write("\n")


BUILDERS: dict[str, Callable[[str, int], None]] = {"image-reward": _build_image_reward}


if __name__ == "__main__":
    os.makedirs(os.path.dirname(_ASSET), exist_ok=True)
    with open(_ASSET, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in train_tiny_wordpiece()))
    print(f"wrote {_ASSET}")
