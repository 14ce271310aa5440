"""Image generator: a text-to-image model renders each item at its seed.

The pipeline family is the model option "type"; "diffusion-pipeline" (the default) is any
pipeline that diffusers' DiffusionPipeline loads: Stable Diffusion 1.x
(StableDiffusionPipeline), SDXL (StableDiffusionXLPipeline), SD3
(StableDiffusion3Pipeline). Describe's model_class is the loaded pipeline's class name.

Size: width and height both 0 mean the model's default size, read from the loaded
pipeline: its default_sample_size (SD3, SDXL; else the UNet's or transformer's
config.sample_size, as SD1.5's __call__ does) times its vae_scale_factor, so 1024x1024 for
SD3-medium and SDXL-base, 512x512 for SD1.5. An explicit size must be a multiple of what
the pipeline checks (SD3: vae_scale_factor x patch_size; UNet pipelines: 8 and the
vae_scale_factor); only one of the two 0 is invalid_input. A result reports the size of
the image really generated.

Seeding: each item has its own torch.Generator seeded with item.seed, so an image does not
depend on its neighbours in a batch. item.generator_device says where it lives:
  "" or "cpu": a CPU generator (the default): the same initial noise on any device;
  "model":     a generator on the pipeline's device (a CUDA generator on a GPU), as the
               paper's later code seeded; its noise differs between CPU and CUDA, and on
               a CPU worker it is a CPU generator, the same as "cpu";
anything else fails the item with invalid_input. The paper's image seeds are
prompt_index*1000 + image_number (the control plane computes them); the later code draws
them from a torch.Generator on the GPU, the first release from torch.manual_seed.

An empty negative prompt is passed as None, as a caller that sets none does: SD1.5 and
SD3 then encode "", SDXL uses zero embeddings (its force_zeros_for_empty_prompt). SD3's
T5 prompt length is left at the pipeline's default max_sequence_length (256).
"""

from __future__ import annotations

import io
import math
import threading
import time
from itertools import groupby

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds.base import Kind, WorkerContext, batches, item_error
from pds_dpo_workers.load_progress import diffusers_bars
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


# item.generator_device -> where its torch.Generator lives ("model": the pipeline's device).
GENERATOR_DEVICES = {"": "cpu", "cpu": "cpu", "model": "model"}


def _invalid(item: pb.ImageGenerationItem, backend: "DiffusionPipelineGenerator") -> str | None:
    if not item.id:
        return "item has no id"
    if not item.prompt.strip():
        return "prompt is empty"
    if item.steps <= 0:
        return f"steps must be positive, got {item.steps}"
    if (item.width == 0) != (item.height == 0):
        return f"size {item.width}x{item.height}: set both width and height, or both 0 for the model's default size"
    width, height = backend.size_of(item)
    multiple = backend.size_multiple
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        return f"size {width}x{height} must be positive multiples of {multiple}"
    if item.guidance_scale < 0:
        return f"guidance_scale must be >= 0, got {item.guidance_scale}"
    if item.generator_device not in GENERATOR_DEVICES:
        return f"generator_device {item.generator_device!r} is not one of \"\", \"cpu\", \"model\""
    return None


def default_size(pipe) -> tuple[int, int]:
    """(width, height) the pipeline renders when given none, as its own __call__ computes it."""
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        for name in ("unet", "transformer"):
            denoiser = getattr(pipe, name, None)
            if denoiser is not None and getattr(denoiser.config, "sample_size", None) is not None:
                sample = denoiser.config.sample_size
                break
    if sample is None:
        raise ModelLoadError(f"{type(pipe).__name__} names no default sample size")
    height, width = (sample, sample) if isinstance(sample, int) else tuple(sample)
    return int(width) * scale, int(height) * scale


def size_multiple(pipe) -> int:
    """Width and height must be multiples of this for the pipeline's check_inputs."""
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    patch = getattr(pipe, "patch_size", None)
    if patch:  # SD3: latents are cut into patch_size x patch_size patches
        return scale * int(patch)
    if getattr(pipe, "unet", None) is not None:  # SD1.x/SDXL check height % 8
        return math.lcm(8, scale)
    return scale * 2


class DiffusionPipelineGenerator:
    """Any text-to-image pipeline that diffusers' DiffusionPipeline loads."""

    def __init__(self, ctx: WorkerContext) -> None:
        from pds_dpo_workers.diffusers_lean import DiffusionPipeline

        resolved = resolve(ctx.spec, ctx.cache_root)
        try:
            with diffusers_bars():
                pipe = DiffusionPipeline.from_pretrained(resolved.directory, local_files_only=True, torch_dtype=torch_dtype(ctx.spec, ctx.device))
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"cannot load a DiffusionPipeline from {resolved.directory}: {e}") from None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(ctx.device)
        self.loaded = resolved.loaded_model(type(pipe).__name__)
        # Width and height must be multiples of this.
        self.size_multiple = size_multiple(pipe)
        # (width, height) of an item whose width and height are 0.
        self.default_size = default_size(pipe)

    def size_of(self, item: pb.ImageGenerationItem) -> tuple[int, int]:
        """(width, height) the item is rendered at: its own, or the model's default."""
        if item.width == 0 and item.height == 0:
            return self.default_size
        return item.width, item.height

    def generator_device(self, item: pb.ImageGenerationItem):
        return "cpu" if GENERATOR_DEVICES[item.generator_device] == "cpu" else self.pipe.device

    def generate(self, chunk: list[pb.ImageGenerationItem], cancel: threading.Event) -> list:
        """float HxWx3 images in [0, 1], one per item; the items share guidance scale, steps,
        size, negative prompt and generator device. Stops at the next step once `cancel` is
        set."""
        import torch

        width, height = self.size_of(chunk[0])
        device = self.generator_device(chunk[0])

        def on_step(pipe, step, timestep, kwargs):
            if cancel.is_set():
                pipe._interrupt = True
            return kwargs

        return self.pipe(
            prompt=[it.prompt for it in chunk],
            # None when empty, as a caller that sets none: SDXL then uses zero embeddings.
            negative_prompt=[it.negative_prompt for it in chunk] if chunk[0].negative_prompt else None,
            guidance_scale=chunk[0].guidance_scale,
            num_inference_steps=chunk[0].steps,
            width=width,
            height=height,
            # A generator per item: results do not depend on batching order (and, on the
            # CPU, not on the device either).
            generator=[torch.Generator(device).manual_seed(int(it.seed)) for it in chunk],
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
            problem = _invalid(item, self.backend)
            if problem:
                emit(pb.GenerateResponse(image=pb.GeneratedImage(id=item.id, error=item_error("invalid_input", problem))))
                done += 1
            else:
                valid.append(item)

        def key(it):
            device = GENERATOR_DEVICES[it.generator_device]
            return (it.guidance_scale, it.steps, self.backend.size_of(it), it.negative_prompt, device)

        # One pipeline call takes one guidance scale, size, step count, negative prompt and
        # generator device: group by them (a default size by the size it resolves to).
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
                    # The size really generated (the model's default for a 0x0 item).
                    height, width = image.shape[:2]
                    emit(
                        pb.GenerateResponse(
                            image=pb.GeneratedImage(id=it.id, image=blob, width=width, height=height, defects=defects, seconds=seconds)
                        )
                    )
                done += len(chunk)
                emit(pb.GenerateResponse(progress=common_pb2.Progress(done=done, total=total, unit="images")))
