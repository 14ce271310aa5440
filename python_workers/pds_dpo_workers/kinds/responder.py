"""Responder: a multimodal LLM answers an instruction about an image.

The model family is the model option "type"; "image-text-to-text" (the default) is any
model with its processor and chat template that transformers loads as
AutoModelForImageTextToText + AutoProcessor (LLaVA-1.5, LLaVA-1.6/NeXT, ...), in 4/8-bit when
ModelSpec.quantization says so; the model option "prompt_format" ("chat" or "raw", see vlm.py)
says how an instruction becomes the prompt. "text-generation" is a text-only chat LLM
(AutoModelForCausalLM + AutoTokenizer: a text judge, as MMHal-Bench's GPT-4 is one): it reads
the instruction alone, and its items need no image. Images of different sizes share a batch (an anyres
processor gives each its own number of image tokens; the prompts are padded). Greedy items
are generated in batches with left padding. Sampled items are generated one at a time with
their own seed, so an answer never depends on which items shared its batch.
"""

from __future__ import annotations

import hashlib
import threading
from itertools import groupby

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, batches, item_error, load_image
from pds_dpo_workers.proto import common_pb2, responder_pb2 as pb
from pds_dpo_workers.streaming import Cancelled
from pds_dpo_workers.vlm import _LEADING_PLACEHOLDER, Vlm

# The config's default (stages.responses.decoding.max_new_tokens), for a request that sets none.
MAX_NEW_TOKENS = 256


def sample_seed(seed: int, k: int) -> int:
    """Seed of sample k of an item: the item's own seed for the first, a hash after it."""
    if k == 0:
        return int(seed)
    return int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:6], "big")


def _decoding_key(d: pb.Decoding):
    return (d.max_new_tokens, d.do_sample, round(d.temperature, 6), round(d.top_p, 6), d.top_k, round(d.repetition_penalty, 6))


def generate_texts(model, tokenizer, inputs, decoding: pb.Decoding, seed: int | None) -> list[tuple[str, int, str]]:
    """(text, tokens, finish reason) per row of `inputs`; `seed` seeds torch's RNG first when given."""
    import torch

    kwargs = {"max_new_tokens": decoding.max_new_tokens or MAX_NEW_TOKENS, "do_sample": decoding.do_sample}
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
        out = model.generate(**inputs, **kwargs)
    new = out[:, inputs["input_ids"].shape[1] :]
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    results = []
    for row in new.tolist():
        pad = tokenizer.pad_token_id
        tokens = [t for t in row if t != pad or t in eos_ids]
        stopped = any(t in eos_ids for t in tokens)
        if stopped:
            tokens = tokens[: next(i for i, t in enumerate(tokens) if t in eos_ids)]
        text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        finish = "stop" if stopped or len(tokens) < kwargs["max_new_tokens"] else "length"
        results.append((text, len(tokens), finish))
    return results


class ImageTextToTextResponder(Vlm):
    """Any image-text-to-text model with its processor and chat template."""

    NEEDS_IMAGE = True

    @property
    def context_length(self) -> int | None:
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return getattr(cfg, "max_position_embeddings", None)

    def prompt_tokens(self, image, instruction: str) -> int:
        return self.processor(images=[image], text=[self.prompt(instruction)], return_tensors="pt")["input_ids"].shape[1]

    def generate(self, images: list, instructions: list[str], decoding: pb.Decoding, seed: int | None) -> list[tuple[str, int, str]]:
        """(text, tokens, finish reason) per image; `seed` seeds torch's RNG first when given."""
        return generate_texts(self.model, self.processor.tokenizer, self.inputs(images, instructions), decoding, seed)


class TextGenerationResponder:
    """A text-only chat LLM (AutoModelForCausalLM, AutoTokenizer): the instruction is the whole
    input (a leading "<image>" placeholder dropped), images are not read. prompt_format "chat"
    (the default) wraps it in the tokenizer's chat template, "raw" sends it as written."""

    NEEDS_IMAGE = False

    def __init__(self, ctx) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from pds_dpo_workers.vlm import load_pretrained, prompt_format

        self.prompt_format = prompt_format(ctx.spec)
        self.model, self.tokenizer, resolved = load_pretrained(ctx, AutoModelForCausalLM, AutoTokenizer, "a text-generation")
        if self.prompt_format == "chat" and not self.tokenizer.chat_template:
            raise ModelLoadError(f"{resolved.directory}: the tokenizer has no chat template; set the model option prompt_format: raw")
        self.loaded = resolved.loaded_model(type(self.model).__name__)

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def prompt(self, instruction: str) -> str:
        text = _LEADING_PLACEHOLDER.sub("", instruction)
        if self.prompt_format == "raw":
            return text
        return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)

    def prompt_tokens(self, image, instruction: str) -> int:
        return len(self.tokenizer(self.prompt(instruction))["input_ids"])

    def generate(self, images: list, instructions: list[str], decoding: pb.Decoding, seed: int | None) -> list[tuple[str, int, str]]:
        inputs = self.tokenizer([self.prompt(t) for t in instructions], return_tensors="pt", padding=True).to(self.model.device)
        return generate_texts(self.model, self.tokenizer, inputs, decoding, seed)


class Responder(Kind):
    # Another serving backend (vLLM, say) is another entry with the members of this one.
    BACKENDS = {"image-text-to-text": ImageTextToTextResponder, "text-generation": TextGenerationResponder}
    TITLE = "responder"
    backend: ImageTextToTextResponder | TextGenerationResponder

    def _too_long(self, item: pb.RespondItem, image) -> str | None:
        """Why the prompt plus the answer would not fit the model's context, if it would not."""
        limit = self.backend.context_length
        if not limit:
            return None
        n = self.backend.prompt_tokens(image, item.instruction)
        budget = item.decoding.max_new_tokens or MAX_NEW_TOKENS
        if n + budget > limit:
            return f"prompt of {n} tokens plus max_new_tokens {budget} exceeds the model's context of {limit}"
        return None

    def _run(self, request: pb.RespondRequest, emit, cancel: threading.Event) -> None:
        total = sum(max(1, it.decoding.num_samples) for it in request.items)
        done = 0
        ready = []
        for item in request.items:
            n = max(1, item.decoding.num_samples)
            try:
                # A text model reads no image: its items (a judge's prompts) may carry none.
                image = load_image(self.ctx.store, item.image) if self.backend.NEEDS_IMAGE else None
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
                units = [(chunk, 0, None) for chunk in batches(group, request.max_batch_size)]
            for chunk, sample_index, seed in units:
                if cancel.is_set():
                    raise Cancelled()
                try:
                    results = self.backend.generate([img for _, img in chunk], [it.instruction for it, _ in chunk], decoding, seed)
                    emit_results(chunk, results, sample_index)
                except Cancelled:
                    raise
                except Exception as e:  # noqa: BLE001 - the chunk fails, each item says why
                    fail(chunk, sample_index, e)
                done += len(chunk)
                emit(pb.RespondResponse(progress=common_pb2.Progress(done=done, total=total, unit="answers")))
