"""Image generator: a text-to-image model renders each item at its seed.

The pipeline family is the model option "type"; "diffusion-pipeline" (the default) is any
pipeline that diffusers' DiffusionPipeline loads (Stable Diffusion 1.x to 3).
"""

from __future__ import annotations

import io
import threading
import time
from itertools import groupby

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, item_error
from pds_dpo_workers.models.spec import resolve, torch_dtype
from pds_dpo_workers.proto import common_pb2, image_generator_pb2 as pb
from pds_dpo_workers.store import write_blob
from pds_dpo_workers.streaming import Cancelled

# Mean pixel value (0..255) at or under which an image counts as all black.
BLACK_LEVEL = 2.0


def _png(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    # Fixed settings and no metadata: the same pixels always give the same bytes.
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def to_png(image) -> tuple[bytes, list[int]]:
    """float HxWx3 in [0, 1] -> PNG bytes and the defects found."""
    import numpy as np

    defects = []
    nan = np.isnan(image)
    if nan.any():
        defects.append(pb.IMAGE_DEFECT_NAN_PIXELS)
        image = np.where(nan, 0.0, image)
    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype("uint8")
    # Judged on the pixels the model really produced, not on NaNs zeroed above.
    real = pixels[~nan]
    if real.size > 0 and real.mean() <= BLACK_LEVEL:
        defects.append(pb.IMAGE_DEFECT_ALL_BLACK)
    return _png(pixels), defects


def _invalid(item: pb.ImageGenerationItem, multiple: int) -> str | None:
    if not item.id:
        return "item has no id"
    if not item.prompt.strip():
        return "prompt is empty"
    if item.steps <= 0:
        return f"steps must be positive, got {item.steps}"
    if item.width <= 0 or item.height <= 0 or item.width % multiple or item.height % multiple:
        return f"size {item.width}x{item.height} must be positive multiples of {multiple}"
    if item.guidance_scale < 0:
        return f"guidance_scale must be >= 0, got {item.guidance_scale}"
    return None


class DiffusionPipelineGenerator:
    """Any text-to-image pipeline that diffusers' DiffusionPipeline loads."""

    def __init__(self, ctx: WorkerContext) -> None:
        from diffusers import DiffusionPipeline

        resolved = resolve(ctx.spec, ctx.cache_root)
        try:
            pipe = DiffusionPipeline.from_pretrained(resolved.directory, local_files_only=True, torch_dtype=torch_dtype(ctx.spec, ctx.device))
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"cannot load a DiffusionPipeline from {resolved.directory}: {e}") from None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(ctx.device)
        self.loaded = resolved.loaded_model(type(pipe).__name__)
        # Width and height must be multiples of this.
        self.size_multiple = int(getattr(pipe, "vae_scale_factor", 8)) * 2

    def generate(self, chunk: list[pb.ImageGenerationItem], cancel: threading.Event) -> list:
        """float HxWx3 images in [0, 1], one per item; the items share guidance scale, steps,
        size. Stops at the next step once `cancel` is set."""
        import torch

        def on_step(pipe, step, timestep, kwargs):
            if cancel.is_set():
                pipe._interrupt = True
            return kwargs

        return self.pipe(
            prompt=[it.prompt for it in chunk],
            negative_prompt=[it.negative_prompt for it in chunk],
            guidance_scale=chunk[0].guidance_scale,
            num_inference_steps=chunk[0].steps,
            width=chunk[0].width,
            height=chunk[0].height,
            # A CPU generator per item: results do not depend on the device or on batching order.
            generator=[torch.Generator("cpu").manual_seed(int(it.seed)) for it in chunk],
            output_type="np",
            callback_on_step_end=on_step,
        ).images


class ImageGenerator(Kind):
    BACKENDS = {"diffusion-pipeline": DiffusionPipelineGenerator}
    TITLE = "image generator"
    backend: DiffusionPipelineGenerator

    def _run(self, request: pb.GenerateRequest, emit, cancel: threading.Event) -> None:
        total = len(request.items)
        done = 0
        valid = []
        for item in request.items:
            problem = _invalid(item, self.backend.size_multiple)
            if problem:
                emit(pb.GenerateResponse(image=pb.GeneratedImage(id=item.id, error=item_error("invalid_input", problem))))
                done += 1
            else:
                valid.append(item)

        def key(it):
            return (it.guidance_scale, it.steps, it.width, it.height, it.negative_prompt)

        # One pipeline call takes one guidance scale, size and step count: group by them.
        for _, group in groupby(sorted(valid, key=key), key=key):
            group = list(group)
            for chunk in batches(group, request.max_batch_size):
                t0 = time.perf_counter()
                try:
                    images = self.backend.generate(chunk, cancel)
                except Exception as e:  # noqa: BLE001 - the batch fails, each item says why
                    if cancel.is_set():
                        raise Cancelled() from None
                    for it in chunk:
                        emit(pb.GenerateResponse(image=pb.GeneratedImage(id=it.id, error=item_error("generation_failed", f"{type(e).__name__}: {e}"))))
                    continue
                if cancel.is_set():
                    raise Cancelled()
                seconds = (time.perf_counter() - t0) / len(chunk)
                for it, image in zip(chunk, images):
                    png, defects = to_png(image)
                    blob = write_blob(self.ctx.store, png, "image/png", request.output)
                    emit(
                        pb.GenerateResponse(
                            image=pb.GeneratedImage(id=it.id, image=blob, width=it.width, height=it.height, defects=defects, seconds=seconds)
                        )
                    )
                done += len(chunk)
                emit(pb.GenerateResponse(progress=common_pb2.Progress(done=done, total=total, unit="images")))
