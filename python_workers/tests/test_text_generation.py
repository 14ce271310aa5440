"""The responder's text-generation backend (a text-only judge, as MMHal-Bench's GPT-4) on the
tiny Llama twin, in process: items without images, prompt formats, batching that does not
change greedy answers, and a checkpoint it cannot prompt."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.kinds import KINDS
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models import tiny
from pds_dpo_workers.models.spec import parse_spec
from pds_dpo_workers.proto import responder_pb2 as pb

MODEL = {"source": "MODEL_SOURCE_TINY", "id": "llama", "options": {"type": "text-generation"}}


def responder(store_dir, model=MODEL):
    ctx = WorkerContext(spec=parse_spec(json.dumps(model)), store=None, cache_root=str(store_dir), device="cpu")
    impl = KINDS["responder"].create(ctx)
    impl.load()
    return impl


@pytest.fixture(scope="module")
def judge(store_dir):
    return responder(store_dir)


def respond(impl, instructions: list[str], max_batch_size: int, max_new_tokens: int = 6) -> list[pb.GeneratedResponse]:
    items = [pb.RespondItem(id=str(i), instruction=t, decoding=pb.Decoding(max_new_tokens=max_new_tokens)) for i, t in enumerate(instructions)]
    out: list[pb.RespondResponse] = []
    impl._run(pb.RespondRequest(items=items, max_batch_size=max_batch_size), out.append, threading.Event())
    return sorted((r.response for r in out if r.WhichOneof("event") == "response"), key=lambda r: int(r.id))


def test_the_twin_is_a_causal_llama_and_says_so(judge):
    assert judge.backend.loaded.model_class == "LlamaForCausalLM"
    assert judge.backend.NEEDS_IMAGE is False


def test_items_without_images_are_answered_and_batching_does_not_change_them(judge):
    prompts = ["is this answer accurate", "describe the image in detail what colors do you see and why", "yes or no"]
    batched = respond(judge, prompts, max_batch_size=3)
    alone = respond(judge, prompts, max_batch_size=1)
    assert [(r.id, r.finish_reason) for r in batched] == [("0", "length"), ("1", "length"), ("2", "length")]
    assert all(r.num_tokens == 6 and r.text for r in batched)
    assert [r.text for r in batched] == [r.text for r in alone]


def test_chat_wraps_the_instruction_and_drops_a_leading_image_placeholder(judge):
    assert judge.backend.prompt("<image>\nRate the answer.") == "USER: Rate the answer. ASSISTANT:"


def test_raw_sends_the_instruction_as_written(store_dir):
    impl = responder(store_dir, {**MODEL, "options": {"type": "text-generation", "prompt_format": "raw"}})
    assert impl.backend.prompt("Rate the answer.") == "Rate the answer."


def test_a_tokenizer_without_chat_template_needs_raw(store_dir, tmp_path):
    directory = tmp_path / "no-template"
    shutil.copytree(tiny.ensure_tiny(str(store_dir), "llama", 0), directory)
    (directory / "chat_template.jinja").unlink()
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"the tokenizer has no chat template; set the model option prompt_format: raw$"):
        responder(store_dir, {"source": "MODEL_SOURCE_PATH", "path": str(directory), "options": {"type": "text-generation"}})
