"""The paper's image generator families (SD3, SDXL) through a real worker process.

Each twin (models/twin_diffusion.py) is loaded by the worker through DiffusionPipeline, as
the real hub repo would be: Describe names the pipeline class, a 0x0 item renders at the
model's default size (which the twins set apart from each other and from SD1.5's), an
explicit size is honoured, and the per-item generator settings are checked.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pytest

from pds_dpo_workers.proto import common_pb2, image_generator_pb2 as pb, image_generator_pb2_grpc as pb_grpc, worker_pb2, worker_pb2_grpc
from worker_harness import WorkerSpec, prestart


@dataclass(frozen=True)
class Twin:
    name: str
    pipeline_class: str
    # (width, height) of a 0x0 item: the pipeline's default sample size x vae_scale_factor.
    default_size: tuple[int, int]
    # Files of the hub repo's layout that this family has and SD1.5 has not.
    layout: tuple[str, ...]


TWINS = [
    Twin(
        "sd3",
        "StableDiffusion3Pipeline",
        (96, 96),  # transformer.sample_size 24 x vae_scale_factor 4
        ("transformer/diffusion_pytorch_model.safetensors", "text_encoder_3/model.safetensors", "tokenizer_3/tokenizer.json"),
    ),
    Twin(
        "sdxl",
        "StableDiffusionXLPipeline",
        (80, 80),  # unet.sample_size 40 x vae_scale_factor 2
        ("unet/diffusion_pytorch_model.safetensors", "text_encoder_2/model.safetensors", "tokenizer_2/tokenizer.json"),
    ),
]


def twin_worker(twin: Twin) -> WorkerSpec:
    return WorkerSpec.of("image-generator", {"source": "MODEL_SOURCE_TINY", "id": twin.name})


@pytest.fixture(scope="module", params=TWINS, ids=lambda t: t.name)
@prestart(lambda twin, basetemp: [twin_worker(twin)])
def twin(request, prestarter):
    """One worker per twin, shared by this module's tests of that twin."""
    spec: Twin = request.param
    worker = prestarter.take(twin_worker(spec))
    yield spec, worker
    rc = worker.terminate()
    assert rc == 0, f"{spec.name} worker exited with {rc} after SIGTERM\n{worker.log_tail()}"


def item(item_id: str, seed: int = 1, width: int = 0, height: int = 0, **kw) -> pb.ImageGenerationItem:
    kw.setdefault("prompt", "a photo of a cat sitting on a wooden table")
    kw.setdefault("steps", 2)
    return pb.ImageGenerationItem(id=item_id, seed=seed, width=width, height=height, **kw)


def generate(worker, items) -> dict[str, pb.GeneratedImage]:
    req = pb.GenerateRequest(items=items, output=common_pb2.OUTPUT_MODE_INLINE)
    results = {}
    for resp in pb_grpc.ImageGeneratorServiceStub(worker.channel).Generate(req, timeout=120):
        if resp.WhichOneof("event") == "image":
            assert resp.image.id not in results, resp.image.id
            results[resp.image.id] = resp.image
    assert sorted(results) == sorted(i.id for i in items)
    return results


def png_size(image: pb.GeneratedImage) -> tuple[int, int]:
    assert not image.HasField("error"), image.error
    data = image.image.inline
    assert data.startswith(b"\x89PNG"), image.id
    # IHDR: width and height are the first two big-endian uint32 after the chunk header.
    return struct.unpack(">II", data[16:24])


def pixels(image: pb.GeneratedImage) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(BytesIO(image.image.inline)).convert("RGB"), dtype=np.int16)


def test_describe_names_the_pipeline_class_and_its_files(twin):
    spec, worker = twin
    model = worker_pb2_grpc.WorkerServiceStub(worker.channel).Describe(worker_pb2.DescribeRequest(), timeout=30).info.model
    assert model.model_class == spec.pipeline_class
    files = {f.path for f in model.files}
    assert {"model_index.json", "vae/diffusion_pytorch_model.safetensors", *spec.layout} <= files, sorted(files)


def test_zero_size_is_the_models_default_size(twin):
    spec, worker = twin
    img = generate(worker, [item("default")])["default"]
    assert png_size(img) == spec.default_size
    assert (img.width, img.height) == spec.default_size
    assert list(img.defects) == []


def test_explicit_size_is_honoured(twin):
    spec, worker = twin
    # Not square, so width and height cannot be swapped unseen; neither is the default.
    img = generate(worker, [item("wide", width=64, height=48)])["wide"]
    assert png_size(img) == (64, 48)
    assert (img.width, img.height) == (64, 48)


def test_generator_device_model_on_a_cpu_worker_is_a_cpu_generator(twin):
    _, worker = twin
    images = generate(
        worker,
        [
            item("unset", seed=5),
            item("cpu", seed=5, generator_device="cpu"),
            item("model", seed=5, generator_device="model"),
            item("other-seed", seed=6, generator_device="model"),
        ],
    )
    # On a CPU worker the model's device is the CPU: one seed, one image ("unset" and "cpu"
    # share a pipeline call, "model" has its own: compared within replay's tolerance).
    for name in ("cpu", "model"):
        assert np.abs(pixels(images["unset"]) - pixels(images[name])).max() <= 2, name
    assert np.abs(pixels(images["model"]) - pixels(images["other-seed"])).max() > 50


def test_bad_generator_device_and_half_zero_size_fail_only_their_item(twin):
    spec, worker = twin
    images = generate(
        worker,
        [
            item("gpu", generator_device="cuda"),
            item("width-only", width=64),
            item("height-only", height=64),
            item("odd", width=60, height=64),
            item("ok", width=64, height=64),
        ],
    )
    for name in ("gpu", "width-only", "height-only", "odd"):
        err = images[name].error
        assert (err.code, err.deterministic) == ("invalid_input", True), (name, err)
        assert not images[name].HasField("image"), name
    assert "generator_device" in images["gpu"].error.message
    assert "both 0" in images["width-only"].error.message
    assert png_size(images["ok"]) == (64, 64)


# -- cancellation, in process -----------------------------------------------------------------


def test_cancel_stops_the_denoising_loop(twin, store_dir):
    """The generator's step callback interrupts this pipeline: once cancel is set, the
    denoiser runs no further step (the callback's kwargs contract holds for the family)."""
    import torch

    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.kinds.image_generator import DiffusionPipelineGenerator

    spec, _ = twin
    torch.set_num_threads(1)
    # The worker built the twin into the same cache: this only loads it.
    ctx = WorkerContext(spec=common_pb2.ModelSpec(source=common_pb2.MODEL_SOURCE_TINY, id=spec.name), store=None, cache_root=str(store_dir), device="cpu")
    backend = DiffusionPipelineGenerator(ctx)
    assert backend.loaded.model_class == spec.pipeline_class
    assert backend.default_size == spec.default_size
    denoiser = getattr(backend.pipe, "transformer", None) or backend.pipe.unet
    calls = []
    hook = denoiser.register_forward_hook(lambda *_: calls.append(1))
    try:
        steps = 6
        chunk = [item("c", steps=steps, guidance_scale=5.0)]
        images = backend.generate(chunk, threading.Event())
        assert len(calls) == steps and images[0].shape == (*spec.default_size[::-1], 3)
        calls.clear()
        cancel = threading.Event()
        cancel.set()
        backend.generate(chunk, cancel)
        # The first step runs, its callback sees the cancel, and no step after it runs.
        assert len(calls) == 1
    finally:
        hook.remove()
