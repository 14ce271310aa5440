"""A custom-code reward model like ArmoRM (the "armorm" twin): its config.json maps
AutoModelForSequenceClassification to modeling_custom.py (auto_map), which runs only with the
model option trust_remote_code; Describe records each code file with its hash."""

from __future__ import annotations

import glob
import math
import time

import pytest

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.models import tiny
from pds_dpo_workers.models.spec import auto_map_refs, check_remote_code, parse_spec, ran_remote_code, resolve
from pds_dpo_workers.proto import common_pb2, response_scorer_pb2 as pb, worker_pb2, worker_pb2_grpc
from pds_dpo_workers.store import sha256_file
from test_response_scorer import ANSWERS, assert_apart, item, ok, score
from worker_harness import WorkerSpec, expect_load_failure, prestart

ARMORM = {"source": "MODEL_SOURCE_TINY", "id": "armorm", "options": {"type": "sequence-classification"}}
TRUSTED_ARMORM = ARMORM | {"options": {"type": "sequence-classification", "trust_remote_code": "true"}}


def refusal(directory: str) -> str:
    return f"{directory}/modeling_custom.py is the model's own code (auto_map in config.json); set model.trust_remote_code: true to run it"


ARMORM_WORKER = WorkerSpec.of("response-scorer", TRUSTED_ARMORM)


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: [ARMORM_WORKER])
def armorm_worker(prestarter):
    worker = prestarter.take(ARMORM_WORKER)
    yield worker
    assert worker.terminate() == 0, worker.log_tail()


def test_describe_names_the_custom_class_and_its_code_file(armorm_worker, store_dir):
    model = worker_pb2_grpc.WorkerServiceStub(armorm_worker.channel).Describe(worker_pb2.DescribeRequest(), timeout=30).info.model
    assert model.model_class == "LlamaForRewardModelWithGating"
    directory = tiny.tiny_dir(str(store_dir), "armorm", 0)
    code = f"{directory}/modeling_custom.py"
    assert [(f.path, f.sha256, f.bytes) for f in model.remote_code] == [("modeling_custom.py", sha256_file(code), len(open(code, "rb").read()))]
    # The code is part of the model's files (and of weights_sha256) too.
    assert "modeling_custom.py" in [f.path for f in model.files]
    # transformers imported its copy from under the cache root, not from ~/.cache/huggingface/modules.
    copies = glob.glob(f"{store_dir}/hf-modules/transformers_modules/*/*/modeling_custom.py")
    assert copies and all(open(c, "rb").read() == open(code, "rb").read() for c in copies), copies


def test_scores_are_finite_apart_and_independent_of_item_order(armorm_worker):
    items = [item(f"a{n}", answer) for n, answer in enumerate(ANSWERS)]
    forward = ok(score(armorm_worker.channel, items))
    backward = ok(score(armorm_worker.channel, items[::-1]))
    assert all(math.isfinite(v) for v in forward.values()), forward
    for k, v in forward.items():
        assert backward[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    assert_apart(forward, 1e-5)


def test_empty_answers_score_only_when_asked(armorm_worker):
    items = [item("empty", ""), item("ok", ANSWERS[0])]
    off = score(armorm_worker.channel, items)
    assert off["empty"].error.code == "empty_answer" and not off["ok"].HasField("error")
    on = ok(score(armorm_worker.channel, items, score_empty_answers=True))
    assert math.isfinite(on["empty"]) and on["ok"] == pytest.approx(ok({"ok": off["ok"]})["ok"], rel=1e-4, abs=1e-6)


# Not started ahead: the time it takes to refuse is part of the test, so it starts here.
def test_without_trust_remote_code_the_worker_fails_to_load_in_one_line(store_dir, tmp_path):
    started = time.monotonic()
    event, rc, worker = expect_load_failure("response-scorer", ARMORM, store_dir, tmp_path)
    assert rc == 3, worker.log_tail()
    assert event["code"] == "model_load_failed"
    assert event["message"] == refusal(tiny.tiny_dir(str(store_dir), "armorm", 0))
    # Refused before transformers is asked (which may prompt on stdin): no wait at all.
    assert time.monotonic() - started < 60


def test_resolve_refuses_an_auto_map_without_trust(store_dir):
    # Every kind resolves its model first: the check reads the configs, nothing runs or prompts.
    spec = parse_spec('{"source": "MODEL_SOURCE_TINY", "id": "armorm"}')
    with pytest.raises(ModelLoadError) as e:
        resolve(spec, str(store_dir))
    directory = tiny.tiny_dir(str(store_dir), "armorm", 0)
    assert str(e.value) == refusal(directory)
    assert auto_map_refs(directory) == {"config.json": ["modeling_custom.LlamaForRewardModelWithGating"]}
    spec.options["trust_remote_code"] = "true"
    resolved = resolve(spec, str(store_dir))
    assert resolved.trust_remote_code and [f.path for f in resolved.code_files] == ["modeling_custom.py"]
    # Listed only when the code ran.
    assert list(resolved.loaded_model("X").remote_code) == []


def test_auto_map_references_of_tokenizers_and_other_repos(tmp_path):
    # Models without an auto_map need nothing.
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    check_remote_code(str(tmp_path), common_pb2.ModelSpec())
    (tmp_path / "config.json").write_text('{"auto_map": {"AutoModel": "other/repo--modeling_x.M"}}')
    (tmp_path / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["tok.Slow", null]}}')
    assert auto_map_refs(str(tmp_path)) == {"config.json": ["other/repo--modeling_x.M"], "tokenizer_config.json": ["tok.Slow"]}
    with pytest.raises(ModelLoadError, match=r"^other/repo:modeling_x.py, .*/tok.py are the model's own code \(auto_map in config.json, tokenizer_config.json\); set model.trust_remote_code: true to run it$"):
        check_remote_code(str(tmp_path), common_pb2.ModelSpec())
    assert not ran_remote_code(object(), None)
