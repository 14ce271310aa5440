"""ImageReward ("image-reward" image scorer): the port of THUDM's checkpoint onto BLIP classes.

A real worker process scores with the twin (ImageReward.pt + med_config.json + a tokenizer,
in the hub checkpoint's own format); in-process tests check the key mapping, the inferred
ViT dimensions and the tokenizer's look-up. bench/image_reward_equivalence.py compares the
port with the original code (its result is in bench/results/).
"""

from __future__ import annotations

import math
import shutil

import pytest

from pds_dpo_workers.errors import ModelLoadError
from pds_dpo_workers.models import tiny
from pds_dpo_workers.proto import common_pb2, image_scorer_pb2 as pb, image_scorer_pb2_grpc as pb_grpc, worker_pb2, worker_pb2_grpc
from worker_harness import WorkerSpec, expect_load_failure, png_bytes, prestart

MODEL = {"source": "MODEL_SOURCE_TINY", "id": "image-reward", "options": {"type": "image-reward"}}
PROMPT = "a close up of a sunflower with a bee"
MEAN, STD = 0.16717362830052426, 1.0333394966054072


WORKER = WorkerSpec.of("image-scorer", MODEL)


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: [WORKER])
def worker(prestarter):
    w = prestarter.take(WORKER)
    yield w
    assert w.terminate() == 0, w.log_tail()


@pytest.fixture(scope="module")
def twin_dir(store_dir):
    return tiny.ensure_tiny(str(store_dir), "image-reward", 0)


@pytest.fixture(scope="module")
def images():
    return [png_bytes(seed) for seed in range(3)]


def score(channel, items) -> dict[str, pb.ImageScore]:
    out = {}
    for resp in pb_grpc.ImageScorerServiceStub(channel).Score(pb.ImageScorerServiceScoreRequest(items=items), timeout=120):
        if resp.WhichOneof("event") == "score":
            out[resp.score.id] = resp.score
    assert sorted(out) == sorted(i.id for i in items)
    return out


def item(item_id: str, data: bytes, prompt: str = PROMPT) -> pb.ImageScoringItem:
    return pb.ImageScoringItem(id=item_id, prompt=prompt, image=common_pb2.Blob(inline=data))


# -- through a worker process -----------------------------------------------------------------


def test_describe_names_image_reward_and_its_files(worker):
    info = worker_pb2_grpc.WorkerServiceStub(worker.channel).Describe(worker_pb2.DescribeRequest(), timeout=30).info
    assert info.model.model_class == "ImageReward"
    assert info.model.spec.id == "image-reward"
    assert dict(info.model.spec.options) == {"type": "image-reward"}
    paths = {f.path for f in info.model.files}
    assert {"ImageReward.pt", "med_config.json", "vocab.txt"} <= paths, paths


def test_scores_are_finite_distinct_and_repeatable(worker, images):
    items = [item(f"i{n}", data) for n, data in enumerate(images)]
    first, second = score(worker.channel, items), score(worker.channel, items)
    for item_id, s in first.items():
        assert not s.HasField("error"), s.error
        assert math.isfinite(s.score)
        assert set(s.components) == {"raw"}
        # The score is ImageReward's normalization of the head's raw output.
        assert s.score == pytest.approx((s.components["raw"] - MEAN) / STD, rel=1e-6, abs=1e-9)
        assert s.score == pytest.approx(second[item_id].score, rel=1e-5, abs=1e-6)
    values = sorted(s.score for s in first.values())
    assert all(b - a > 1e-4 for a, b in zip(values, values[1:])), values


def test_the_prompt_matters(worker, images):
    out = score(worker.channel, [item("cat", images[0], "a photo of a cat"), item("car", images[0], "a red vintage car at night")])
    assert abs(out["cat"].score - out["car"].score) > 1e-4


def test_worker_scores_as_the_port_does_in_process(worker, twin_dir, images):
    import io

    from PIL import Image

    from pds_dpo_workers.models.image_reward import load_image_reward

    model, tokenizer_dir = load_image_reward(twin_dir)
    assert tokenizer_dir is None  # the twin's own tokenizer
    raw, scores = model.score([PROMPT, PROMPT], [Image.open(io.BytesIO(d)).convert("RGB") for d in images[:2]])
    out = score(worker.channel, [item("a", images[0]), item("b", images[1])])
    assert [out["a"].score, out["b"].score] == pytest.approx(scores, rel=1e-5, abs=1e-6)
    assert [out["a"].components["raw"], out["b"].components["raw"]] == pytest.approx(raw, rel=1e-5, abs=1e-6)


def test_corrupt_image_fails_its_item_only(worker, images):
    data = images[2]
    out = score(worker.channel, [item("cut", data[: len(data) // 2]), item("junk", b"not an image"), item("ok", data)])
    for bad in ("cut", "junk"):
        assert out[bad].error.code == "invalid_image"
        assert out[bad].error.deterministic
    assert not out["ok"].HasField("error")
    assert math.isfinite(out["ok"].score)


def test_directory_without_checkpoint_fails_the_load_in_one_line(store_dir, tmp_path):
    model_dir = tmp_path / "no-checkpoint"
    model_dir.mkdir()
    (model_dir / "med_config.json").write_text("{}")
    model = {"source": "MODEL_SOURCE_PATH", "path": str(model_dir), "options": {"type": "image-reward"}}
    event, rc, w = expect_load_failure("image-scorer", model, store_dir, tmp_path / "logs")
    assert rc == 3, w.log_tail()
    assert event["code"] == "model_load_failed"
    message = event["message"]
    assert "\n" not in message
    assert "ImageReward.pt" in message and str(model_dir) in message, message
    assert "Traceback" not in w.log_path.read_text()


# -- the port, in process ---------------------------------------------------------------------


def test_key_mapping_consumes_every_checkpoint_key(twin_dir):
    import torch
    from transformers import BlipTextModel, BlipVisionModel

    from pds_dpo_workers.models import image_reward as ir

    state, med = ir.read_checkpoint(twin_dir)
    mapped = ir.map_state_dict(state)
    # Every key of ImageReward.pt lands somewhere, once; only the documented ones are unused.
    assert len(mapped.vision) + len(mapped.text) + len(mapped.head) + len(mapped.unused) == len(state)
    assert sorted(mapped.unused) == [
        "blip.text_encoder.embeddings.position_ids",
        "blip.text_proj.bias",
        "blip.text_proj.weight",
        "blip.vision_proj.bias",
        "blip.vision_proj.weight",
    ]
    # The renames of the ViT (transformers' convert_blip_original_pytorch_to_hf.py).
    for original, port in [
        ("cls_token", "embeddings.class_embedding"),
        ("pos_embed", "embeddings.position_embedding"),
        ("patch_embed.proj.weight", "embeddings.patch_embedding.weight"),
        ("blocks.1.attn.qkv.bias", "encoder.layers.1.self_attn.qkv.bias"),
        ("blocks.0.attn.proj.weight", "encoder.layers.0.self_attn.projection.weight"),
        ("blocks.1.norm2.weight", "encoder.layers.1.layer_norm2.weight"),
        ("norm.bias", "post_layernorm.bias"),
    ]:
        assert torch.equal(mapped.vision[port], state[f"blip.visual_encoder.{original}"]), original
    # None missing and none left over, against the modules' own state dicts.
    vision_config = ir.vision_config_from(mapped.vision)
    with torch.device("meta"):
        vision = BlipVisionModel(vision_config)
        text = BlipTextModel(ir.text_config_from(med, vision_config.hidden_size), add_pooling_layer=False)
        head = ir.ImageRewardHead(mapped.head)
    for module, part in ((vision, mapped.vision), (text, mapped.text), (head, mapped.head)):
        expected = module.state_dict()
        assert sorted(part) == sorted(expected)
        assert all(part[k].shape == expected[k].shape for k in part)


def test_vit_dimensions_are_inferred_from_the_shapes(twin_dir):
    from pds_dpo_workers.models import image_reward as ir
    from pds_dpo_workers.models.twin_image_reward import VISION

    state, _ = ir.read_checkpoint(twin_dir)
    config = ir.vision_config_from(ir.map_state_dict(state).vision)
    assert (config.image_size, config.patch_size) == (VISION["image_size"], VISION["patch"])
    assert (config.hidden_size, config.num_hidden_layers) == (VISION["width"], VISION["depth"])
    assert config.num_attention_heads == VISION["width"] // 64
    assert config.intermediate_size == VISION["width"] * VISION["mlp_ratio"]
    assert config.layer_norm_eps == 1e-6  # timm's ViT, not BlipVisionConfig's 1e-5


@pytest.mark.parametrize(
    "change, expect",
    [
        pytest.param({"logit_scale": 1.0}, "logit_scale", id="unknown-key"),
        # A med.py variant with relative position embeddings: a text key the port has no place for.
        pytest.param({"blip.text_encoder.encoder.layer.0.attention.self.distance_embedding.weight": 1.0}, "distance_embedding", id="unknown-text-key"),
        pytest.param({"blip.text_encoder.encoder.layer.1.crossattention.self.key.weight": None}, "crossattention.self.key.weight", id="missing-key"),
        pytest.param({"blip.visual_encoder.blocks.0.attn.qkv.bias": None}, "qkv.bias", id="missing-qkv-bias"),
    ],
)
def test_unknown_or_missing_keys_fail_the_load(twin_dir, tmp_path, change, expect):
    import torch

    from pds_dpo_workers.models.image_reward import load_image_reward, read_checkpoint

    state, _ = read_checkpoint(twin_dir)
    for key, value in change.items():
        if value is None:
            del state[key]
        else:
            state[key] = torch.full((2, 2), value)
    for name in ("med_config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{twin_dir}/{name}", tmp_path / name)
    torch.save(state, tmp_path / "ImageReward.pt")
    with pytest.raises(ModelLoadError, match=expect.replace(".", r"\.")) as err:
        load_image_reward(str(tmp_path))
    assert "\n" not in str(err.value)


def test_tokenizer_comes_from_the_option_when_the_directory_has_none(twin_dir, tmp_path, images):
    import io

    from PIL import Image

    from pds_dpo_workers.models.image_reward import load_image_reward

    bare = tmp_path / "hub-layout"  # as THUDM/ImageReward: no tokenizer
    bare.mkdir()
    for name in ("ImageReward.pt", "med_config.json"):
        shutil.copy(f"{twin_dir}/{name}", bare / name)
    with pytest.raises(ModelLoadError, match='model option "tokenizer"') as err:
        load_image_reward(str(bare))
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="id@revision"):
        load_image_reward(str(bare), tokenizer="google-bert/bert-base-uncased")
    # Offline (conftest), a hub tokenizer not in the HF cache is a one-line load failure.
    with pytest.raises(ModelLoadError, match=r"the tokenizer google-bert/bert-base-uncased@0{40} is neither a local directory nor in the HF cache \(.*\), and HF_HUB_OFFLINE is set: "):
        load_image_reward(str(bare), tokenizer="google-bert/bert-base-uncased@" + "0" * 40)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no BERT tokenizer"):
        load_image_reward(str(bare), tokenizer=str(empty))

    model, tokenizer_dir = load_image_reward(str(bare), tokenizer=twin_dir)
    assert tokenizer_dir == twin_dir
    own, _ = load_image_reward(twin_dir)
    image = [Image.open(io.BytesIO(images[0])).convert("RGB")]
    assert model.score([PROMPT], image) == own.score([PROMPT], image)
    # ImageReward's two added tokens are there, after the WordPiece vocabulary.
    assert model.tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [len(model.tokenizer) - 2, len(model.tokenizer) - 1]
    assert model.tokenizer.bos_token == "[DEC]"


def test_preprocess_resizes_the_short_side_and_center_crops():
    import numpy as np
    import torch
    from PIL import Image

    from pds_dpo_workers.models.image_reward import CLIP_MEAN, CLIP_STD, preprocess

    wide = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(40, 90, 3), dtype=np.uint8))
    assert tuple(preprocess(wide, 32).shape) == (3, 32, 32)
    # An image already at the size is only normalized: ToTensor then Normalize.
    flat = Image.new("RGB", (32, 32), (255, 0, 128))
    x = preprocess(flat, 32)
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), CLIP_MEAN, CLIP_STD)]
    assert torch.allclose(x[:, 5, 7], torch.tensor(expected, dtype=torch.float32), atol=1e-6)
