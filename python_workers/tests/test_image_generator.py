"""Image generator: determinism, the store, defects, cancellation on SIGTERM."""

from __future__ import annotations

import hashlib
import re
import threading
import time

import grpc
import numpy as np
import pytest

from pds_dpo_workers.kinds.image_generator import to_png
from pds_dpo_workers.proto import common_pb2, image_generator_pb2 as pb, image_generator_pb2_grpc as pb_grpc
from worker_harness import GENERATOR_MODEL, start_worker


def item(item_id: str, seed: int, prompt: str = "a photo of a cat sitting on a wooden table", steps: int = 2) -> pb.ImageGenerationItem:
    return pb.ImageGenerationItem(id=item_id, prompt=prompt, steps=steps, width=64, height=64, seed=seed)


def generate(channel, items, output=common_pb2.OUTPUT_MODE_INLINE, **kw) -> dict[str, pb.GeneratedImage]:
    req = pb.GenerateRequest(items=items, output=output, **kw)
    images = {}
    for resp in pb_grpc.ImageGeneratorServiceStub(channel).Generate(req, timeout=120):
        if resp.WhichOneof("event") == "image":
            assert resp.image.id not in images, f"duplicate result for {resp.image.id}"
            assert not resp.image.HasField("error"), resp.image.error
            images[resp.image.id] = resp.image
    assert sorted(images) == sorted(i.id for i in items)
    return images


def inline(images: dict[str, pb.GeneratedImage], item_id: str) -> bytes:
    data = images[item_id].image.inline
    assert data.startswith(b"\x89PNG"), item_id
    return data


def test_same_seed_same_png_in_the_store(generator_worker):
    refs = []
    for _ in range(2):
        img = generate(generator_worker.channel, [item("x", seed=7)], output=common_pb2.OUTPUT_MODE_STORE)["x"]
        assert img.image.WhichOneof("kind") == "ref"
        refs.append(img.image.ref)
    first, second = refs
    assert first.uri == second.uri
    m = re.fullmatch(r"cas://sha256/([0-9a-f]{64})", first.uri)
    assert m, first.uri
    digest = m.group(1)
    path = generator_worker.store / "cas" / "sha256" / digest[:2] / digest
    assert path.is_file()
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    assert data.startswith(b"\x89PNG")
    assert (first.sha256, first.bytes, first.media_type) == (digest, len(data), "image/png")


def test_different_seeds_different_images(generator_worker):
    images = generate(generator_worker.channel, [item("s1", seed=1), item("s2", seed=2)])
    assert inline(images, "s1") != inline(images, "s2")


def pixels(data: bytes) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_same_batch_same_bytes_and_its_order_only_within_float_noise(generator_worker):
    # The same batch again: the same bytes (the cache and replay rely on it).
    a = [item("before", seed=10, prompt="an oil painting of a mountain lake"), item("t", seed=11), item("after", seed=12, prompt="a bowl of ramen")]
    forward = generate(generator_worker.channel, a)
    again = generate(generator_worker.channel, a)
    for i in a:
        assert inline(forward, i.id) == inline(again, i.id)
    # Each item has its own CPU generator, so neither its neighbours' seeds nor its position
    # change its image beyond float noise: CPU kernels may treat batch rows (and batch sizes)
    # differently by ~1e-6, which can flip an 8-bit value, so another order is compared
    # within replay's pixel tolerance (2). The control plane forms batches from the plan
    # order only, so a batch is always the same items in the same order.
    backward = generate(generator_worker.channel, list(reversed(a)))
    for i in a:
        assert np.abs(pixels(inline(forward, i.id)) - pixels(inline(backward, i.id))).max() <= 2, i.id
    # Far above the tolerance between two items.
    assert np.abs(pixels(inline(forward, "before")) - pixels(inline(forward, "t"))).max() > 50


# -- to_png, without a worker ---------------------------------------------------------------


def test_to_png_all_nan_is_a_nan_defect_only():
    png, defects = to_png(np.full((16, 16, 3), np.nan, dtype=np.float32))
    # Zeroed NaNs must not also count as black: NaN is the only defect.
    assert list(defects) == [pb.IMAGE_DEFECT_NAN_PIXELS]
    assert png.startswith(b"\x89PNG")


def test_to_png_black_image():
    _, defects = to_png(np.zeros((16, 16, 3), dtype=np.float32))
    assert list(defects) == [pb.IMAGE_DEFECT_ALL_BLACK]


def test_to_png_normal_image_has_no_defects():
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    png, defects = to_png(image)
    assert defects == []
    # Same pixels, same bytes.
    assert to_png(image.copy())[0] == png


def test_to_png_partly_nan_is_judged_on_the_real_pixels():
    image = np.ones((16, 16, 3), dtype=np.float32)
    image[0, 0, 0] = np.nan
    _, defects = to_png(image)
    assert list(defects) == [pb.IMAGE_DEFECT_NAN_PIXELS]


# -- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_cancels_the_batch_in_flight_and_exits_0(store_dir, tmp_path):
    # A dedicated worker: this test kills it.
    worker = start_worker("image-generator", GENERATOR_MODEL, store_dir, tmp_path)
    try:
        # One item per pipeline call: the first image proves the batch is running, and
        # the other 7 (200 steps each) are still to come when SIGTERM arrives.
        req = pb.GenerateRequest(
            items=[item(f"i{n}", seed=n, steps=200) for n in range(8)], output=common_pb2.OUTPUT_MODE_INLINE, max_batch_size=1
        )
        stream = pb_grpc.ImageGeneratorServiceStub(worker.channel).Generate(req, timeout=120)
        received = []
        error: list[grpc.RpcError] = []
        first = threading.Event()

        def consume():
            try:
                for resp in stream:
                    if resp.WhichOneof("event") == "image":
                        received.append(resp.image.id)
                        first.set()
            except grpc.RpcError as e:
                error.append(e)
            first.set()

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        assert first.wait(90), f"no image arrived\n{worker.log_tail()}"
        assert not error, error
        t0 = time.monotonic()
        worker.process.terminate()
        rc = worker.process.wait(timeout=15)
        exit_s = time.monotonic() - t0
        reader.join(15)
        assert not reader.is_alive(), "the client stream did not end"
    finally:
        worker.terminate(timeout=5)
    assert rc == 0, worker.log_tail()
    assert exit_s < 15
    assert 1 <= len(received) < 8, received
    assert len(error) == 1, "the stream ended without an error, as if the batch had completed"
    assert error[0].code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), error[0]
    assert "shutting down" in worker.log_path.read_text()


# -- size and generator device (SD1.5; SD3 and SDXL in test_diffusion_twins.py) ----------------


def test_zero_size_is_the_sd15_default_and_reported(generator_worker):
    req = [
        pb.ImageGenerationItem(id="default", prompt="a photo of a cat", steps=2, seed=4),
        pb.ImageGenerationItem(id="explicit", prompt="a photo of a cat", steps=2, seed=4, width=64, height=64),
    ]
    images = generate(generator_worker.channel, req)
    # The twin's unet.sample_size 32 x vae_scale_factor 2 (512 = 64 x 8 in SD1.5).
    assert (images["default"].width, images["default"].height) == (64, 64)
    assert pixels(inline(images, "default")).shape == (64, 64, 3)
    # The same size and seed, so the same image (one pipeline call, so within float noise).
    assert np.abs(pixels(inline(images, "default")) - pixels(inline(images, "explicit"))).max() <= 2


def test_size_and_generator_device_are_checked_per_item(generator_worker):
    req = pb.GenerateRequest(
        items=[
            pb.ImageGenerationItem(id="half", prompt="a cat", steps=2, seed=1, width=64),
            pb.ImageGenerationItem(id="not-8", prompt="a cat", steps=2, seed=1, width=60, height=64),
            pb.ImageGenerationItem(id="device", prompt="a cat", steps=2, seed=1, width=64, height=64, generator_device="gpu"),
            item("ok", seed=1),
        ],
        output=common_pb2.OUTPUT_MODE_INLINE,
    )
    errors = {}
    for resp in pb_grpc.ImageGeneratorServiceStub(generator_worker.channel).Generate(req, timeout=120):
        if resp.WhichOneof("event") == "image":
            errors[resp.image.id] = resp.image.error.code if resp.image.HasField("error") else ""
    # SD1.5's check_inputs wants multiples of 8.
    assert errors == {"half": "invalid_input", "not-8": "invalid_input", "device": "invalid_input", "ok": ""}


def test_diffusers_pipelines_are_imported_without_bitsandbytes_or_peft():
    """The generator's diffusers leaves out the quantizers and LoRA loaders it never uses (their
    import of bitsandbytes compiles with torch.compile: seconds of each generator's start)."""
    import subprocess
    import sys

    code = (
        "import sys, pds_dpo_workers.diffusers_lean as d; "
        "from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline; "
        "assert issubclass(StableDiffusionPipeline, d.DiffusionPipeline); "
        "print(sorted(m for m in ('bitsandbytes', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
