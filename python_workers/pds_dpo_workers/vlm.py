"""Image-text-to-text models (LLaVA-1.5, LLaVA-1.6/NeXT, ...) through transformers'
AutoModelForImageTextToText and AutoProcessor: loading, the chat prompt and batched inputs.

Shared by the responder, the VLM judge of the response scorer and the evaluator.
"""

from __future__ import annotations

import re

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models.spec import resolve, torch_dtype

# The published instruction files start each instruction with the image placeholder.
_IMAGE_PLACEHOLDER = re.compile(r"^\s*<image>\s*")


def quantization_config(kind: str, device: str):
    """bitsandbytes 4/8-bit config; a clear error where CUDA or bitsandbytes is missing."""
    if not kind:
        return None
    if device != "cuda":
        raise ModelLoadError(f"quantization {kind} needs a CUDA device (this worker runs on {device})")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"quantization {kind} needs the bitsandbytes package, which is not installed") from None
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ModelLoadError(f"unknown quantization {kind!r}; use 4bit or 8bit")


def load_vlm(ctx: WorkerContext):
    """(model, processor, resolved) for an image-text-to-text model, its tokenizer padding on the left."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    resolved = resolve(ctx.spec, ctx.cache_root)
    quant = quantization_config(ctx.spec.quantization, ctx.device)
    try:
        processor = AutoProcessor.from_pretrained(resolved.directory, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(
            resolved.directory,
            local_files_only=True,
            dtype=torch_dtype(ctx.spec, ctx.device),
            quantization_config=quant,
        )
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load an image-text-to-text model from {resolved.directory}: {e}") from None
    if quant is None:
        model = model.to(ctx.device)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        # Batched generation of a decoder-only model pads on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), processor, resolved


def chat_prompt(processor, instruction: str) -> str:
    question = _IMAGE_PLACEHOLDER.sub("", instruction)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def vlm_inputs(processor, model, images: list, instructions: list[str]):
    """Batched model inputs for instructions about images, through the chat template (left padded)."""
    prompts = [chat_prompt(processor, text) for text in instructions]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return inputs


class Vlm:
    """A loaded image-text-to-text model and its processor: the base of the backends that run one."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.model, self.processor, resolved = load_vlm(ctx)
        self.loaded = resolved.loaded_model(type(self.model).__name__)

    def inputs(self, images: list, instructions: list[str]):
        return vlm_inputs(self.processor, self.model, images, instructions)
