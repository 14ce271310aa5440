"""Image-text-to-text models (LLaVA-1.5, LLaVA-1.6/NeXT, ...) through transformers'
AutoModelForImageTextToText and AutoProcessor: loading (optionally in 4/8-bit), the prompt
and batched inputs.

Shared by the responder, the VLM judge of the response scorer and the evaluator, so the
model options below mean the same in all three:

- "prompt_format": how an instruction becomes the model's prompt (see `build_prompt`).
  "chat" (the default): the processor's chat template, one user turn of the image and the
  question. "raw": the instruction string itself, as the paper's authors sent it to the HF
  image-to-text pipeline (no chat template).
- ModelSpec.quantization "4bit" / "8bit": bitsandbytes, on CUDA and on CPU (see
  `quantization_config`).
"""

from __future__ import annotations

import logging
import re

from pds_dpo_workers.errors import InvalidModelSpec, ModelLoadError
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models.spec import resolve, torch_dtype

log = logging.getLogger("pds_dpo_workers.vlm")

IMAGE_PLACEHOLDER = "<image>"
# The published instruction files start each instruction with the image placeholder.
_LEADING_PLACEHOLDER = re.compile(r"^\s*<image>\s*")

PROMPT_FORMATS = ("chat", "raw")
QUANTIZATIONS = ("4bit", "8bit")
QUANT_INSTALL_HINT = "pip install 'pds_dpo_workers[quant]'"
# bitsandbytes' CPU 4-bit kernel (used where the CPU has AVX512-BF16) packs a linear layer's
# weight in blocks of 64 inputs and 32 outputs; other shapes fail at the first forward.
_CPU_4BIT_BLOCK_OUT = 32


def prompt_format(spec) -> str:
    """The model option "prompt_format" ("chat" when unset); another value is an InvalidModelSpec."""
    fmt = spec.options.get("prompt_format") or "chat"
    if fmt not in PROMPT_FORMATS:
        raise InvalidModelSpec(f"unknown prompt_format {fmt!r}; use {' or '.join(PROMPT_FORMATS)}")
    return fmt


def quantization_config(kind: str, device: str, dtype=None):
    """bitsandbytes 4/8-bit config for a model loaded on `device` ("cpu" or "cuda"), or None.

    4-bit computes in `dtype`, the model's dtype (float16 on CUDA by default, as the paper's
    bnb_4bit_compute_dtype; float32 on CPU). bitsandbytes runs 4-bit and 8-bit on CPU too
    (0.50: its CPU backend); an unknown kind or a missing bitsandbytes is a clear ModelLoadError.
    """
    if not kind:
        return None
    if kind not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {kind!r}; use {' or '.join(QUANTIZATIONS)}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"quantization {kind} needs the bitsandbytes package, which is not installed: {QUANT_INSTALL_HINT}") from None
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        compute = dtype or (torch.float32 if device == "cpu" else torch.float16)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
    return BitsAndBytesConfig(load_in_8bit=True)


def quantized_layers(model) -> dict[str, int]:
    """{bitsandbytes layer class: count} of a loaded model, e.g. {"Linear4bit": 28}."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if type(module).__module__.startswith("bitsandbytes."):
            name = type(module).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


def _check_cpu_4bit_shapes(model) -> None:
    """Fail the load, not every later generation, where bitsandbytes' CPU 4-bit kernel cannot
    run a layer of this model (its AVX512-BF16 path packs weights in 64x32 blocks)."""
    for name, module in model.named_modules():
        if type(module).__name__ != "Linear4bit" or not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        state = getattr(module.weight, "quant_state", None)
        block = getattr(state, "blocksize", None) or 64
        if module.in_features % block or module.out_features % _CPU_4BIT_BLOCK_OUT:
            raise ModelLoadError(
                f"quantization 4bit on this CPU (bitsandbytes' AVX512-BF16 kernel) needs linear layers with in_features "
                f"a multiple of {block} and out_features a multiple of {_CPU_4BIT_BLOCK_OUT}; {name} is "
                f"{module.in_features} -> {module.out_features}"
            )


def load_pretrained(ctx: WorkerContext, model_auto, processor_auto, family: str):
    """(model, processor, resolved): the spec's checkpoint through transformers' `model_auto`
    and `processor_auto` classes (quantized and placed as the spec says), its tokenizer
    padding on the left; `family` names it in a load error."""
    resolved = resolve(ctx.spec, ctx.cache_root)
    dtype = torch_dtype(ctx.spec, ctx.device)
    quant = quantization_config(ctx.spec.quantization, ctx.device, dtype)
    # A quantized model is placed by bitsandbytes as it loads: on this worker's device.
    placement = {"quantization_config": quant, "device_map": {"": ctx.device}} if quant is not None else {}
    try:
        processor = processor_auto.from_pretrained(resolved.directory, local_files_only=True)
        model = model_auto.from_pretrained(resolved.directory, local_files_only=True, dtype=dtype, **placement)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise ModelLoadError(f"cannot load {family} model from {resolved.directory}: {e}") from None
    if quant is None:
        model = model.to(ctx.device)
    else:
        layers = quantized_layers(model)
        log.info("quantization %s on %s: %s", ctx.spec.quantization, ctx.device, ", ".join(f"{n} {c} layers" for n, c in sorted(layers.items())) or "no layers")
        if ctx.spec.quantization == "4bit" and ctx.device == "cpu":
            _check_cpu_4bit_shapes(model)
    # A processor holds its tokenizer; a text model's "processor" is the tokenizer itself.
    tokenizer = getattr(processor, "tokenizer", None) or (processor if hasattr(processor, "pad_token") else None)
    if tokenizer is not None:
        # Batched generation of a decoder-only model pads on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), processor, resolved


def load_vlm(ctx: WorkerContext):
    """(model, processor, resolved) for an image-text-to-text model, its tokenizer padding on the left."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    prompt_format(ctx.spec)  # an unknown format fails before any weights are read
    return load_pretrained(ctx, AutoModelForImageTextToText, AutoProcessor, "an image-text-to-text")


def chat_prompt(processor, instruction: str) -> str:
    """The processor's chat template over one user turn: the image, then the question (the
    instruction without its leading placeholder, which the template puts back in its place)."""
    question = _LEADING_PLACEHOLDER.sub("", instruction)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def raw_prompt(instruction: str) -> str:
    """The paper's prompt: the instruction exactly as given ("<image> question" in the published
    files), no chat template. One without the placeholder gets "<image>\\n" in front, where
    LLaVA puts the image, since the processor needs one placeholder per image."""
    if IMAGE_PLACEHOLDER in instruction:
        return instruction
    return f"{IMAGE_PLACEHOLDER}\n{instruction}"


def build_prompt(processor, instruction: str, fmt: str = "chat") -> str:
    """The prompt for an instruction in a prompt format ("chat" or "raw")."""
    if fmt == "raw":
        return raw_prompt(instruction)
    if fmt == "chat":
        return chat_prompt(processor, instruction)
    raise InvalidModelSpec(f"unknown prompt_format {fmt!r}; use {' or '.join(PROMPT_FORMATS)}")


def vlm_inputs(processor, model, images: list, instructions: list[str], fmt: str = "chat"):
    """Batched model inputs for instructions about images (left padded).

    Images of different sizes batch as they are: an anyres processor (LLaVA-1.6) expands each
    prompt's placeholder to its own image's token count, pads the prompts to one length and
    the images' tiles to the most tiles, and the model drops that padding by `image_sizes`.
    """
    prompts = [build_prompt(processor, text, fmt) for text in instructions]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return inputs


class Vlm:
    """A loaded image-text-to-text model and its processor: the base of the backends that run one."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.prompt_format = prompt_format(ctx.spec)
        self.model, self.processor, resolved = load_vlm(ctx)
        self.loaded = resolved.loaded_model(type(self.model).__name__)

    def prompt(self, instruction: str) -> str:
        return build_prompt(self.processor, instruction, self.prompt_format)

    def inputs(self, images: list, instructions: list[str]):
        return vlm_inputs(self.processor, self.model, images, instructions, self.prompt_format)
