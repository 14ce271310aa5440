"""Responder: a multimodal LLM answers an instruction about an image.

Loads any image-text-to-text model with its processor and chat template
(AutoModelForImageTextToText + AutoProcessor: LLaVA-1.5, LLaVA-1.6/NeXT, ...). Greedy items
are generated in batches with left padding. Sampled items are generated one at a time with
their own seed, so an answer never depends on which items shared its batch.
"""

from __future__ import annotations

import hashlib
import re
import threading
from itertools import groupby

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext, item_error, load_image
from pds_dpo_workers.models.spec import resolve, torch_dtype
from pds_dpo_workers.proto import common_pb2, responder_pb2 as pb
from pds_dpo_workers.streaming import Cancelled

DEFAULT_BATCH = 8
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
    """(model, processor, resolved) for an image-text-to-text model; shared with the evaluator and judge."""
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


def sample_seed(seed: int, k: int) -> int:
    """Seed of sample k of an item: the item's own seed for the first, a hash after it."""
    if k == 0:
        return int(seed)
    return int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:6], "big")


def _decoding_key(d: pb.Decoding):
    return (d.max_new_tokens, d.do_sample, round(d.temperature, 6), round(d.top_p, 6), d.top_k, round(d.repetition_penalty, 6))


class Responder(Kind):
    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.model = None
        self.processor = None

    def load(self) -> common_pb2.LoadedModel:
        self.model, self.processor, resolved = load_vlm(self.ctx)
        return resolved.loaded_model(type(self.model).__name__)

    @property
    def context_length(self) -> int | None:
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return getattr(cfg, "max_position_embeddings", None)

    def _too_long(self, item: pb.RespondItem, image) -> str | None:
        """Why the prompt plus the answer would not fit the model's context, if it would not."""
        limit = self.context_length
        if not limit:
            return None
        n = self.processor(images=[image], text=[chat_prompt(self.processor, item.instruction)], return_tensors="pt")["input_ids"].shape[1]
        budget = item.decoding.max_new_tokens or 256
        if n + budget > limit:
            return f"prompt of {n} tokens plus max_new_tokens {budget} exceeds the model's context of {limit}"
        return None

    def _generate(self, items: list[tuple[pb.RespondItem, object]], decoding: pb.Decoding, seed: int | None):
        import torch

        inputs = vlm_inputs(self.processor, self.model, [img for _, img in items], [it.instruction for it, _ in items])
        kwargs = {"max_new_tokens": decoding.max_new_tokens or 256, "do_sample": decoding.do_sample}
        if decoding.do_sample:
            kwargs.update(
                temperature=decoding.temperature or 1.0,
                top_p=decoding.top_p or 1.0,
                top_k=decoding.top_k or 0,
            )
        if decoding.repetition_penalty:
            kwargs["repetition_penalty"] = decoding.repetition_penalty
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        results = []
        for row in new.tolist():
            pad = self.processor.tokenizer.pad_token_id
            tokens = [t for t in row if t != pad or t in eos_ids]
            stopped = any(t in eos_ids for t in tokens)
            if stopped:
                tokens = tokens[: next(i for i, t in enumerate(tokens) if t in eos_ids)]
            text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            finish = "stop" if stopped or len(tokens) < kwargs["max_new_tokens"] else "length"
            results.append((text, len(tokens), finish))
        return results

    def _run(self, request: pb.RespondRequest, emit, cancel: threading.Event) -> None:
        total = sum(max(1, it.decoding.num_samples) for it in request.items)
        done = 0
        batch = request.max_batch_size or DEFAULT_BATCH
        ready = []
        for item in request.items:
            n = max(1, item.decoding.num_samples)
            try:
                image = load_image(self.ctx.store, item.image)
                problem = self._too_long(item, image)
            except Exception as e:  # noqa: BLE001 - a bad image fails its item only
                code, problem = "invalid_image", f"{type(e).__name__}: {e}"
            else:
                code = "context_too_long"
            if problem:
                for k in range(n):
                    emit(pb.RespondResponse(response=pb.GeneratedResponse(id=item.id, sample_index=k, finish_reason="error", error=item_error(code, problem))))
                done += n
            else:
                ready.append((item, image))

        def emit_results(chunk, results, sample_index):
            for (it, _), (text, n_tokens, finish) in zip(chunk, results):
                emit(pb.RespondResponse(response=pb.GeneratedResponse(id=it.id, sample_index=sample_index, text=text, num_tokens=n_tokens, finish_reason=finish)))

        def fail(chunk, sample_index, e):
            for it, _ in chunk:
                emit(pb.RespondResponse(response=pb.GeneratedResponse(id=it.id, sample_index=sample_index, finish_reason="error", error=item_error("generation_failed", f"{type(e).__name__}: {e}"))))

        ready.sort(key=lambda p: _decoding_key(p[0].decoding))
        for _, group in groupby(ready, key=lambda p: _decoding_key(p[0].decoding)):
            group = list(group)
            decoding = group[0][0].decoding
            if decoding.do_sample:
                # One item at a time, each sample with its own seed: independent of batching.
                units = [([p], k, sample_seed(p[0].seed, k)) for p in group for k in range(max(1, decoding.num_samples))]
            else:
                units = [(group[i : i + batch], 0, None) for i in range(0, len(group), batch)]
            for chunk, sample_index, seed in units:
                if cancel.is_set():
                    raise Cancelled()
                try:
                    emit_results(chunk, self._generate(chunk, decoding, seed), sample_index)
                except Cancelled:
                    raise
                except Exception as e:  # noqa: BLE001 - the chunk fails, each item says why
                    fail(chunk, sample_index, e)
                done += len(chunk)
                emit(pb.RespondResponse(progress=common_pb2.Progress(done=done, total=total, unit="answers")))
