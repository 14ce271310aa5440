"""Tiny twin of LLaVA-1.6 (LlavaNextForConditionalGeneration with its anyres processor).

Shaped like llava-hf/llava-v1.6-vicuna-7b-hf at toy size: a CLIP vision tower (32x32 tiles in
8x8 patches, where the real one has 336x336 tiles in 14x14 patches), an MLP projector, a Llama
("vicuna") language model, the learned image-newline vector and the anyres grid. The grid's
pinpoints are the real ones scaled from 336 to 32 pixels per tile:
(32,64), (64,32), (64,64), (96,32), (32,96) as (height, width).

An image becomes its base tile (the whole image resized, 16 features) plus the tiles of the
grid resolution that fits it best, unpadded back to the image's aspect ratio, with one newline
feature per row. So the number of image tokens depends on the image's size, e.g. (the CLS
feature is dropped, vision_feature_select_strategy "default"):

    48x48 (square) -> grid 64x64: 8x8 + 8 newlines + 16 = 88 tokens
    48x96 (h x w)  -> grid 32x64: 4x8 + 4 newlines + 16 = 52 tokens
    96x48          -> grid 64x32: 8x4 + 8 newlines + 16 = 56 tokens

The processor expands each "<image>" to its own image's count and pads the prompts (on the
left, as the worker sets it) to one length; pixel values of images with fewer tiles are
padded to the batch's most tiles, and the model drops the padding by `image_sizes`. So a
batch of differently sized images is one ordinary batch.
"""

from __future__ import annotations

from typing import Callable

# (height, width) resolutions of the anyres grid, in pixels: llava-v1.6's, 336 -> 32 per tile.
IMAGE_GRID_PINPOINTS = [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]]
TILE = 32
PATCH = 8
WIDTH = 64

# Vicuna v1 conversation, as LLaVA-1.6-vicuna was trained on (LLaVA's conv_vicuna_v1): the
# system line (unless a system message replaces it), then "USER: <image>\n{question} ASSISTANT:".
VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
VICUNA_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}" + VICUNA_SYSTEM + " {% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %} "
    "{% else %}"
    "{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _build_llava_next(out_dir: str, seed: int) -> None:
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    from pds_dpo_workers.models.tiny import _seed_all, _tiny_llama_config, _word_bpe_tokenizer, llava_fields

    tokenizer = _word_bpe_tokenizer()
    tokenizer.chat_template = VICUNA_CHAT_TEMPLATE
    _seed_all(seed)
    # Widths are multiples of 64 (the LLaVA-1.5 twin's are 32 and 37): bitsandbytes' CPU
    # 4-bit kernel packs each linear layer in blocks of 64 inputs and 32 outputs, so this
    # twin is the one that loads and answers in 4-bit on a CPU (see vlm.quantization_config).
    vision = CLIPVisionConfig(
        hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_attention_heads=4, num_hidden_layers=2, image_size=TILE, patch_size=PATCH, projection_dim=WIDTH
    )
    # 8192 positions: MMHal-Bench's rubric (about 4,850 tokens in the tiny tokenizer) fits, so
    # this twin can judge as the paper's LLaVA-1.6 does (rotary positions: no extra weights).
    text = _tiny_llama_config(tokenizer, hidden_size=WIDTH, intermediate_size=2 * WIDTH, max_position_embeddings=8192)
    config = LlavaNextConfig(
        **llava_fields(tokenizer, vision, text),
        image_grid_pinpoints=IMAGE_GRID_PINPOINTS,
        image_seq_length=(TILE // PATCH) ** 2,
    )
    config.vision_config.model_type = "clip_vision_model"
    model = LlavaNextForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": TILE},
        crop_size={"height": TILE, "width": TILE},
        image_grid_pinpoints=IMAGE_GRID_PINPOINTS,
        do_pad=True,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=VICUNA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)


BUILDERS: dict[str, Callable[[str, int], None]] = {"llava-next": _build_llava_next}
