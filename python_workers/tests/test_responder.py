"""Responder: greedy and sampled decoding, finish reasons, context limits, the chat and raw prompts."""

from __future__ import annotations

import pytest

from pds_dpo_workers import vlm
from pds_dpo_workers.kinds import responder
from pds_dpo_workers.models import tiny
from pds_dpo_workers.proto import common_pb2, responder_pb2 as pb, responder_pb2_grpc as pb_grpc
from worker_harness import RESPONDER_MODEL, WorkerSpec, png_bytes

MAX_NEW = 16
INSTRUCTIONS = [
    "<image> describe the image in detail",
    "how many people are there",
    "what is the weather like",
    "what colors do you see",
]


def greedy(max_new_tokens: int = MAX_NEW) -> pb.Decoding:
    return pb.Decoding(max_new_tokens=max_new_tokens)


def sampled(num_samples: int = 2) -> pb.Decoding:
    return pb.Decoding(max_new_tokens=MAX_NEW, do_sample=True, temperature=1.0, num_samples=num_samples)


def item(item_id: str, n: int, decoding: pb.Decoding, seed: int = 0, instruction: str | None = None) -> pb.RespondItem:
    return pb.RespondItem(
        id=item_id,
        image=common_pb2.Blob(inline=png_bytes(n)),
        instruction=instruction if instruction is not None else INSTRUCTIONS[n % len(INSTRUCTIONS)],
        seed=seed,
        decoding=decoding,
    )


def respond(channel, items, *, errors_ok: bool = False, **kw) -> dict[tuple[str, int], pb.GeneratedResponse]:
    """{(id, sample_index): response}: exactly one per item and sample, none missing."""
    out = {}
    req = pb.RespondRequest(items=items, **kw)
    for resp in pb_grpc.ResponderServiceStub(channel).Respond(req, timeout=120):
        if resp.WhichOneof("event") == "response":
            r = resp.response
            key = (r.id, r.sample_index)
            assert key not in out, f"duplicate result for {key}"
            if not errors_ok:
                assert not r.HasField("error"), r.error
            out[key] = r
    expected = {(i.id, k) for i in items for k in range(max(1, i.decoding.num_samples))}
    assert set(out) == expected
    return out


def texts(results) -> dict[tuple[str, int], str]:
    return {k: r.text for k, r in results.items()}


# -- greedy -----------------------------------------------------------------------------------


def test_greedy_is_deterministic_and_independent_of_batch_order(responder_worker):
    # Same batch, any order: left padding is the same for each item, so is its answer.
    # (A batch of another *size* pads differently; the control plane keeps batches fixed.)
    items = [item(f"g{n}", n, greedy()) for n in range(4)]
    first = respond(responder_worker.channel, items)
    second = respond(responder_worker.channel, items)
    backward = respond(responder_worker.channel, list(reversed(items)))
    assert texts(first) == texts(second)
    assert texts(first) == texts(backward)
    assert {k: r.num_tokens for k, r in first.items()} == {k: r.num_tokens for k, r in backward.items()}
    # Real answers, and not one constant answer for every item.
    assert all(r.text and r.num_tokens > 0 for r in first.values()), first
    assert len(set(texts(first).values())) >= 3, texts(first)


def test_greedy_ignores_the_seed(responder_worker):
    a = respond(responder_worker.channel, [item("x", 1, greedy(), seed=1)])
    b = respond(responder_worker.channel, [item("x", 1, greedy(), seed=999)])
    assert texts(a) == texts(b)


def test_finish_reason_is_length_exactly_when_the_budget_is_spent(responder_worker):
    items = [item(f"f{n}", n, greedy()) for n in range(4)] + [item(f"short{n}", n, greedy(4)) for n in range(4)]
    results = respond(responder_worker.channel, items)
    budget = {i.id: i.decoding.max_new_tokens for i in items}
    for (item_id, _), r in results.items():
        assert 0 < r.num_tokens <= budget[item_id], r
        assert r.finish_reason == ("length" if r.num_tokens == budget[item_id] else "stop"), r
    # The 4-token budget is spent by every item (none stops that early), so the case is hit.
    for n in range(4):
        r = results[(f"short{n}", 0)]
        assert (r.num_tokens, r.finish_reason) == (4, "length"), r
        # A shorter budget cuts the same greedy answer short: it is a prefix of the long one
        # (up to a multi-byte character cut in half at its end).
        long_text = results[(f"f{n}", 0)].text
        assert long_text.startswith(r.text.rstrip("\ufffd")), (r.text, long_text)


# -- sampling ---------------------------------------------------------------------------------


def test_sampling_is_seeded_per_item_and_sample(responder_worker):
    items = [item("a", 0, sampled(), seed=5), item("b", 1, sampled(), seed=6)]
    first = respond(responder_worker.channel, items)
    assert sorted(first) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    for r in first.values():
        assert r.text and r.num_tokens > 0 and r.finish_reason in ("stop", "length"), r
    # Two samples of one item are two different answers.
    assert first[("a", 0)].text != first[("a", 1)].text
    assert first[("b", 0)].text != first[("b", 1)].text

    # Same seeds: the same answers, whatever the order of the items.
    again = respond(responder_worker.channel, list(reversed(items)))
    assert texts(again) == texts(first)

    # Item "a" alone: its samples do not depend on its neighbours.
    alone = respond(responder_worker.channel, [items[0]])
    assert texts(alone) == {k: v for k, v in texts(first).items() if k[0] == "a"}

    # Another seed: other answers, for both samples.
    other = respond(responder_worker.channel, [item("a", 0, sampled(), seed=105)])
    for k in range(2):
        assert other[("a", k)].text != first[("a", k)].text, k


def test_sample_seed():
    assert responder.sample_seed(7, 0) == 7
    seeds = {responder.sample_seed(7, k) for k in range(4)}
    assert len(seeds) == 4
    assert responder.sample_seed(7, 1) != responder.sample_seed(8, 1)


# -- the mute model ---------------------------------------------------------------------------


def test_mute_model_answers_empty_with_stop(mute_responder_worker, responder_worker):
    items = [item("g", 0, greedy()), item("s", 1, sampled(), seed=4)]
    results = respond(mute_responder_worker.channel, items)
    assert len(results) == 3
    for r in results.values():
        assert (r.text, r.num_tokens, r.finish_reason) == ("", 0, "stop"), r
    # The same items get words from the ordinary model: it is the model that is mute.
    normal = respond(responder_worker.channel, items)
    assert all(r.text for r in normal.values()), normal


# -- context limit ----------------------------------------------------------------------------


def test_instruction_beyond_the_context_fails_its_item_only(responder_worker):
    # ~1500 words: well past the tiny model's context of 1024 positions.
    long_instruction = " ".join(["a photo of a cat sitting on a wooden table"] * 150)
    assert len(long_instruction.split()) == 1500
    items = [
        item("long", 0, greedy(), instruction="<image> " + long_instruction),
        item("short", 1, greedy(), instruction="<image> what colors do you see"),
    ]
    results = respond(responder_worker.channel, items, errors_ok=True)
    long, short = results[("long", 0)], results[("short", 0)]
    assert long.error.code == "context_too_long", long
    assert long.error.deterministic is True
    assert "context" in long.error.message and "1024" in long.error.message, long.error.message
    assert (long.text, long.num_tokens, long.finish_reason) == ("", 0, "error")
    assert not short.HasField("error"), short.error
    assert short.text and short.num_tokens > 0 and short.finish_reason in ("stop", "length")


# -- the chat prompt (no worker) --------------------------------------------------------------


@pytest.fixture(scope="module")
def llava_processor(store_dir):
    from transformers import AutoProcessor

    directory = tiny.ensure_tiny(str(store_dir), RESPONDER_MODEL["id"], 0)
    return AutoProcessor.from_pretrained(directory, local_files_only=True)


@pytest.mark.parametrize(
    "instruction",
    [
        pytest.param("<image> describe the image in detail", id="placeholder-space"),
        pytest.param("<image>\ndescribe the image in detail", id="placeholder-newline"),
        pytest.param("  <image>describe the image in detail", id="placeholder-indented"),
        pytest.param("describe the image in detail", id="no-placeholder"),
    ],
)
def test_chat_prompt_has_exactly_one_image_token(llava_processor, instruction):
    prompt = vlm.chat_prompt(llava_processor, instruction)
    assert prompt.count("<image>") == 1, prompt
    # The tiny model's LLaVA-1.5 template, with the instruction's placeholder replaced by its own.
    assert prompt == "USER: <image>\ndescribe the image in detail ASSISTANT:"


@pytest.mark.parametrize(
    "instruction, raw",
    [
        pytest.param("<image> describe the image in detail", "<image> describe the image in detail", id="as-given"),
        pytest.param("describe the image in detail", "<image>\ndescribe the image in detail", id="placeholder-added"),
    ],
)
def test_raw_prompt_format_is_the_instruction_without_the_template(llava_processor, instruction, raw):
    assert vlm.build_prompt(llava_processor, instruction, "raw") == raw
    assert vlm.build_prompt(llava_processor, instruction, "chat") == "USER: <image>\ndescribe the image in detail ASSISTANT:"
    assert vlm.build_prompt(llava_processor, instruction) == vlm.chat_prompt(llava_processor, instruction)


def test_chat_prompt_expands_to_one_image_worth_of_tokens(llava_processor):
    from PIL import Image

    prompt = vlm.chat_prompt(llava_processor, "<image> describe the image")
    ids = llava_processor(images=[Image.new("RGB", (48, 48))], text=[prompt], return_tensors="pt")["input_ids"][0]
    image_token = llava_processor.tokenizer.convert_tokens_to_ids("<image>")
    # 32x32 pixels in 8x8 patches: 16 features for the one image (the CLS token is dropped).
    assert int((ids == image_token).sum()) == 16


# -- the model options at load ---------------------------------------------------------------
# (4-bit and 8-bit loads, which bitsandbytes runs on this CPU, are in test_llava_next.py.)


UNKNOWN_PROMPT_FORMAT = WorkerSpec.of("responder", RESPONDER_MODEL | {"options": {"prompt_format": "vicuna"}}, ("--device", "cpu"))


@pytest.mark.prestart(UNKNOWN_PROMPT_FORMAT)
def test_unknown_prompt_format_fails_to_load_and_exits_3(prestarter):
    event, rc, worker = prestarter.load_failure(UNKNOWN_PROMPT_FORMAT)
    assert rc == 3, worker.log_tail()
    assert event["code"] == "invalid_model_spec"
    assert event["message"] == "unknown prompt_format 'vicuna'; use chat or raw", event
