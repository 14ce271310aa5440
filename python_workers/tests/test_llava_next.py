"""LLaVA-1.6 (the "llava-next" twin, anyres), the model option prompt_format, and 4/8-bit
loading with bitsandbytes on this CPU: unit level in-process, and through real responder workers."""

from __future__ import annotations

import importlib.util
import io
import re
import sys

import pytest

from pds_dpo_workers import vlm
from pds_dpo_workers.errors import InvalidModelSpec, ModelLoadError
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models import tiny, twin_llava_next
from pds_dpo_workers.proto import common_pb2, responder_pb2 as pb, responder_pb2_grpc as pb_grpc, worker_pb2, worker_pb2_grpc
from worker_harness import WorkerSpec, prestart

NEXT_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "llava-next"}
# One worker for both options (each worker is seconds of start-up on 2 cores): 4-bit, raw prompt.
RAW_4BIT_NEXT_MODEL = NEXT_MODEL | {"quantization": "4bit", "options": {"prompt_format": "raw"}}
WORKERS = {name: WorkerSpec.of("responder", model, ("--device", "cpu")) for name, model in (("chat", NEXT_MODEL), ("raw-4bit", RAW_4BIT_NEXT_MODEL))}

# (height, width) of the test images, and the image tokens the anyres processor gives each:
# base tile 16 + the best grid resolution's tiles unpadded to the aspect ratio, + a newline per row.
SIZES = {(48, 48): 88, (48, 96): 52, (96, 48): 56}
INSTRUCTION = "<image> describe the image in detail"


def image(h: int, w: int, seed: int = 0):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8), mode="RGB")


def png(h: int, w: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    image(h, w, seed).save(buf, format="PNG")
    return buf.getvalue()


def items(instruction: str = INSTRUCTION, max_new_tokens: int = 8) -> list[pb.RespondItem]:
    return [
        pb.RespondItem(
            id=f"{h}x{w}",
            image=common_pb2.Blob(inline=png(h, w, seed=n)),
            instruction=instruction,
            decoding=pb.Decoding(max_new_tokens=max_new_tokens),
        )
        for n, (h, w) in enumerate(SIZES)
    ]


def respond(worker, request_items, max_batch_size: int = 0) -> dict[str, pb.GeneratedResponse]:
    """{id: response}, one per item, none failed; max_batch_size 0: the request is one batch."""
    out = {}
    req = pb.RespondRequest(items=request_items, max_batch_size=max_batch_size)
    for resp in pb_grpc.ResponderServiceStub(worker.channel).Respond(req, timeout=120):
        if resp.WhichOneof("event") == "response":
            r = resp.response
            assert not r.HasField("error"), r.error
            assert r.id not in out
            out[r.id] = r
    assert set(out) == {i.id for i in request_items}
    return out


def describe(worker) -> worker_pb2.WorkerInfo:
    return worker_pb2_grpc.WorkerServiceStub(worker.channel).Describe(worker_pb2.DescribeRequest(), timeout=30).info


def spec(**kw) -> common_pb2.ModelSpec:
    options = kw.pop("options", {})
    s = common_pb2.ModelSpec(source=common_pb2.MODEL_SOURCE_TINY, **kw)
    s.options.update(options)
    return s


# -- workers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def next_dir(store_dir):
    # Built once here, so the workers below, started side by side, find it in the cache.
    return tiny.ensure_tiny(str(store_dir), "llava-next", 0)


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: list(WORKERS.values()))
def workers(prestarter):
    """Two responders of the llava-next twin: "chat" (float32, the chat template) and "raw-4bit"
    (4-bit, the raw prompt); started ahead (concurrent tiny builds are safe), stopped cleanly at the end."""
    started = {}
    try:
        for name, spec in WORKERS.items():
            started[name] = prestarter.take(spec)
        yield started
    finally:
        codes = {name: w.terminate() for name, w in started.items()}
    assert all(rc == 0 for rc in codes.values()), codes


# -- the twin -----------------------------------------------------------------------------------


def test_twin_is_llava_v1_6_shaped(next_dir):
    import json
    import os

    with open(os.path.join(next_dir, "config.json")) as f:
        config = json.load(f)
    assert config["architectures"] == ["LlavaNextForConditionalGeneration"]
    assert config["image_grid_pinpoints"] == twin_llava_next.IMAGE_GRID_PINPOINTS
    assert config["vision_feature_select_strategy"] == "default" and config["vision_feature_layer"] == -2
    assert config["vision_config"]["image_size"] == 32 and config["vision_config"]["patch_size"] == 8


@pytest.fixture(scope="module")
def next_processor(next_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(next_dir, local_files_only=True)
    processor.tokenizer.padding_side = "left"
    return processor


def test_anyres_gives_each_image_size_its_own_token_count(next_processor):
    token = next_processor.tokenizer.convert_tokens_to_ids("<image>")
    prompt = vlm.chat_prompt(next_processor, INSTRUCTION)
    for (h, w), expected in SIZES.items():
        ids = next_processor(images=[image(h, w)], text=[prompt], return_tensors="pt")["input_ids"][0]
        assert int((ids == token).sum()) == expected, (h, w)
    # One batch of all three: each row keeps its own count; the shorter rows are padded on the left.
    batch = next_processor(images=[image(h, w) for h, w in SIZES], text=[prompt] * len(SIZES), return_tensors="pt", padding=True)
    counts = (batch["input_ids"] == token).sum(-1).tolist()
    assert counts == list(SIZES.values())
    pad = next_processor.tokenizer.pad_token_id
    longest = max(SIZES.values())
    for row, count in zip(batch["input_ids"].tolist(), counts):
        assert row[: longest - count] == [pad] * (longest - count)
    # The tiles are padded to the most tiles (5: the 64x64 grid's 4 and the base tile).
    assert tuple(batch["pixel_values"].shape) == (3, 5, 3, 32, 32)
    assert batch["image_sizes"].tolist() == [list(s) for s in SIZES]


# -- prompt_format (no worker) ------------------------------------------------------------------


def test_chat_prompt_is_the_vicuna_template(next_processor):
    assert vlm.build_prompt(next_processor, INSTRUCTION, "chat") == (
        twin_llava_next.VICUNA_SYSTEM + " USER: <image>\ndescribe the image in detail ASSISTANT:"
    )


@pytest.mark.parametrize(
    "instruction, expected",
    [
        pytest.param("<image> describe the image", "<image> describe the image", id="published-as-given"),
        pytest.param("<image>\ndescribe the image", "<image>\ndescribe the image", id="newline-as-given"),
        pytest.param("describe the image", "<image>\ndescribe the image", id="no-placeholder-prefixed"),
    ],
)
def test_raw_prompt_is_the_instruction_itself(next_processor, instruction, expected):
    raw = vlm.build_prompt(next_processor, instruction, "raw")
    assert raw == expected
    assert raw != vlm.build_prompt(next_processor, instruction, "chat")
    # The processor takes it as it is: one image's worth of tokens, no template around it.
    ids = next_processor(images=[image(48, 48)], text=[raw], return_tensors="pt")["input_ids"][0]
    assert int((ids == next_processor.tokenizer.convert_tokens_to_ids("<image>")).sum()) == SIZES[(48, 48)]
    assert "USER" not in next_processor.tokenizer.decode(ids)


def test_prompt_format_option():
    assert vlm.prompt_format(spec(id="llava-next")) == "chat"
    assert vlm.prompt_format(spec(id="llava-next", options={"prompt_format": "chat"})) == "chat"
    assert vlm.prompt_format(spec(id="llava-next", options={"prompt_format": "raw"})) == "raw"
    with pytest.raises(InvalidModelSpec, match="unknown prompt_format 'vicuna'; use chat or raw"):
        vlm.prompt_format(spec(id="llava-next", options={"prompt_format": "vicuna"}))


def test_unknown_prompt_format_fails_the_load_before_any_build(tmp_path, monkeypatch):
    monkeypatch.setenv(tiny.TINY_CACHE_ENV, str(tmp_path / "models" / "tiny"))
    ctx = WorkerContext(spec=spec(id="llava-next", options={"prompt_format": "Raw"}), store=None, cache_root=str(tmp_path), device="cpu")
    with pytest.raises(InvalidModelSpec, match="prompt_format 'Raw'"):
        vlm.load_vlm(ctx)
    assert not (tmp_path / "models").exists()


# -- through real workers -----------------------------------------------------------------------


def test_describe_names_llava_next(workers):
    for name, w in workers.items():
        info = describe(w)
        assert info.model.model_class == "LlavaNextForConditionalGeneration", name
    spec_4bit = describe(workers["raw-4bit"]).model.spec
    assert spec_4bit.quantization == "4bit" and spec_4bit.options["prompt_format"] == "raw"


def test_a_batch_of_differently_sized_images_answers_each(workers):
    results = respond(workers["chat"], items())
    for r in results.values():
        assert r.text and r.num_tokens > 0 and r.finish_reason in ("stop", "length"), r
    # The same batch again: the same answers.
    assert {k: r.text for k, r in respond(workers["chat"], items()).items()} == {k: r.text for k, r in results.items()}


# An answer budget no twin's context holds (the LLaVA-1.6 twin takes 8192 positions).
PAST_ANY_CONTEXT = 1_000_000


def prompt_tokens_seen_by(worker, instruction: str, h: int, w: int) -> int:
    """The prompt's length as the worker counts it: an answer budget past the context fails
    the item with "prompt of N tokens plus max_new_tokens ..." (its context check)."""
    it = pb.RespondItem(id="probe", image=common_pb2.Blob(inline=png(h, w)), instruction=instruction, decoding=pb.Decoding(max_new_tokens=PAST_ANY_CONTEXT))
    [r] = [x.response for x in pb_grpc.ResponderServiceStub(worker.channel).Respond(pb.RespondRequest(items=[it]), timeout=60) if x.HasField("response")]
    assert r.error.code == "context_too_long", r
    return int(re.match(r"prompt of (\d+) tokens", r.error.message).group(1))


@pytest.mark.parametrize("instruction", [INSTRUCTION, "describe the image in detail"], ids=["placeholder", "no-placeholder"])
def test_each_worker_prompts_in_its_prompt_format(workers, next_processor, instruction):
    # The worker's prompt is exactly the one build_prompt makes for its format.
    for name, fmt in (("chat", "chat"), ("raw-4bit", "raw")):
        for h, w in ((48, 48), (48, 96)):
            prompt = vlm.build_prompt(next_processor, instruction, fmt)
            expected = next_processor(images=[image(h, w)], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
            assert prompt_tokens_seen_by(workers[name], instruction, h, w) == expected, (name, h, w)


def test_4bit_worker_answers_on_cpu_with_the_raw_prompt(workers):
    w = workers["raw-4bit"]
    results = respond(w, items())
    assert all(r.text and r.num_tokens > 0 for r in results.values()), results
    # Its linear layers were loaded as bitsandbytes 4-bit layers (the worker's log says how many).
    log = w.log_path.read_text(errors="replace")
    assert "quantization 4bit on cpu: Linear4bit 28 layers" in log, w.log_tail()


# -- quantization (in-process) ------------------------------------------------------------------


def test_bitsandbytes_is_installed():
    # scripts/setup.sh installs the quant extra: 4-bit is tested for real, never skipped.
    assert importlib.util.find_spec("bitsandbytes"), "bitsandbytes is missing: pip install -e 'python_workers[quant]' (scripts/setup.sh does)"


@pytest.mark.parametrize("kind, layer", [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantized_load_on_cpu(next_dir, store_dir, kind, layer):
    import torch

    ctx = WorkerContext(spec=spec(id="llava-next", quantization=kind), store=None, cache_root=str(store_dir), device="cpu")
    model, processor, _ = vlm.load_vlm(ctx)
    assert type(model).__name__ == "LlavaNextForConditionalGeneration"
    assert vlm.quantized_layers(model) == {layer: 28}
    # The language model's and the vision tower's linear layers alike; the output head stays as it is.
    quantized = {name.split(".")[1] for name, m in model.named_modules() if type(m).__name__ == layer}
    assert quantized == {"language_model", "vision_tower", "multi_modal_projector"}, quantized
    assert type(model.lm_head).__name__ == "Linear"
    assert model.device.type == "cpu"
    inputs = vlm.vlm_inputs(processor, model, [image(48, 96)], [INSTRUCTION])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3


def test_4bit_compute_dtype_is_the_model_dtype():
    import torch

    assert vlm.quantization_config("4bit", "cpu").bnb_4bit_compute_dtype == torch.float32
    assert vlm.quantization_config("4bit", "cuda").bnb_4bit_compute_dtype == torch.float16
    assert vlm.quantization_config("4bit", "cuda", torch.bfloat16).bnb_4bit_compute_dtype == torch.bfloat16
    assert vlm.quantization_config("8bit", "cpu").load_in_8bit
    assert vlm.quantization_config("", "cpu") is None
    with pytest.raises(ModelLoadError, match="unknown quantization '3bit'; use 4bit or 8bit"):
        vlm.quantization_config("3bit", "cpu")


@pytest.mark.parametrize("kind", ["4bit", "8bit"])
def test_missing_bitsandbytes_is_one_clear_error(monkeypatch, kind):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    with pytest.raises(ModelLoadError) as e:
        vlm.quantization_config(kind, "cpu")
    assert str(e.value) == (
        f"quantization {kind} needs the bitsandbytes package, which is not installed: pip install 'pds_dpo_workers[quant]'"
    )


def test_4bit_of_a_model_the_cpu_kernel_cannot_pack_fails_the_load(store_dir):
    # The LLaVA-1.5 twin's layers are 32 and 37 wide; bitsandbytes' AVX512-BF16 CPU kernel
    # needs 64-input blocks, so a 4-bit load of it must fail at once and say why.
    from bitsandbytes.functional import has_avx512bf16

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes runs 4-bit without the packed kernel")
    ctx = WorkerContext(spec=spec(id="llava", quantization="4bit"), store=None, cache_root=str(store_dir), device="cpu")
    with pytest.raises(ModelLoadError, match=r"quantization 4bit on this CPU .* in_features a multiple of 64 .* is 32 -> 32"):
        vlm.load_vlm(ctx)


def _vlm_backends():
    from pds_dpo_workers.kinds.evaluator import ImageTextToTextEvaluator
    from pds_dpo_workers.kinds.responder import ImageTextToTextResponder
    from pds_dpo_workers.kinds.response_scorer import VlmJudgeScorer

    return [ImageTextToTextResponder, VlmJudgeScorer, ImageTextToTextEvaluator]


@pytest.mark.parametrize("backend", _vlm_backends(), ids=lambda c: c.__name__)
def test_every_vlm_backend_honours_prompt_format(next_dir, store_dir, backend):
    # The responder, the VLM judge and the evaluator all build their inputs through vlm.py.
    ctx = WorkerContext(spec=spec(id="llava-next", options={"prompt_format": "raw"}), store=None, cache_root=str(store_dir), device="cpu")
    b = backend(ctx)
    assert b.prompt_format == "raw"
    question = "is there a tree in the picture"
    got = b.inputs([image(48, 96)], [question])["input_ids"]
    want = b.processor(images=[image(48, 96)], text=["<image>\n" + question], return_tensors="pt")["input_ids"]
    assert got.tolist() == want.tolist()
