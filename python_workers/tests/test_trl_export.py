"""A real orchestrator run through the train stage, then its outputs in the libraries users
take them to: TRL collates pairs.jsonl unchanged (loaded with `datasets`, the tiny LLaVA
processor), and peft loads the trained adapter onto the base model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin" / "orchestrate.js"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    if not (REPO / "dist" / "cli" / "main.js").exists():
        pytest.fail("the control plane is not built; run scripts/setup.sh first")
    d = tmp_path_factory.mktemp("trl-export")
    lines = (REPO / "configs" / "prompts" / "tiny.jsonl").read_text().splitlines()[:3]
    (d / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    local = "runtime: {type: local, device: cpu, cpu_threads: 1}"
    (d / "experiment.yaml").write_text(
        f"""name: trl-export
seed: 5
workers:
  sd: {{kind: image-generator, model: {{source: tiny, name: sd}}, {local}}}
  pick: {{kind: image-scorer, model: {{source: tiny, name: clip-scorer}}, {local}}}
  a: {{kind: responder, model: {{source: tiny, name: llava, seed: 1}}, {local}}}
  b: {{kind: responder, model: {{source: tiny, name: llava, seed: 2}}, {local}}}
  rm: {{kind: response-scorer, model: {{source: tiny, name: reward}}, {local}}}
  dpo: {{kind: dpo-trainer, model: {{source: tiny, name: llava, seed: 1}}, {local}}}
stages:
  images: {{prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2, size: 64}}
  responses: {{responders: [a, b], decoding: {{max_new_tokens: 12}}, scorer: rm, pairs: {{drop_truncated: false}}}}
  train: {{trainer: dpo, lora: {{r: 4, alpha: 8, dropout: 0.0}}, dpo: {{beta: 0.1}}, optim: {{lr: 0.05, max_steps: 2, batch_size: 2}}, report_to: [tensorboard]}}
"""
    )
    store = d / "store"
    r = subprocess.run(
        ["node", str(BIN), "run", str(d / "experiment.yaml"), "--store", str(store), "--run-id", "t1", "--until", "train"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 0, r.stderr
    (d / "run.stderr").write_text(r.stderr)
    return store / "runs" / "t1"


def test_trl_collates_the_export_unchanged(run_dir, monkeypatch):
    from datasets import Image, List, load_dataset
    from transformers import AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from pds_dpo_workers.models.tiny import tiny_dir

    pairs = [json.loads(line) for line in (run_dir / "dataset" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) >= 2
    # Image paths in the export are relative to the run directory.
    monkeypatch.chdir(run_dir)
    ds = load_dataset("json", data_files="dataset/pairs.jsonl", split="train")
    assert set(["images", "prompt", "chosen", "rejected"]) <= set(ds.column_names)
    ds = ds.cast_column("images", List(Image()))
    processor = AutoProcessor.from_pretrained(tiny_dir(str(run_dir.parents[1]), "llava", 1), local_files_only=True)
    batch = DataCollatorForVisionPreference(processor=processor)([ds[i] for i in range(len(ds))])
    n = len(ds)
    # Chosen and rejected rows for every pair, each with its image.
    assert batch["input_ids"].shape[0] == 2 * n
    assert batch["pixel_values"].shape[:2] == (2 * n, 3)
    assert batch["completion_mask"].sum(dim=1).min() > 0
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert ((batch["input_ids"] == image_token).sum(dim=1) > 0).all()


def test_the_adapter_loads_with_peft_and_changes_the_logits(run_dir):
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pds_dpo_workers.models.tiny import tiny_dir

    base_dir = tiny_dir(str(run_dir.parents[1]), "llava", 1)
    processor = AutoProcessor.from_pretrained(base_dir, local_files_only=True)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]}], add_generation_prompt=True
    )
    inputs = processor(images=[Image.open(next((run_dir / "images").iterdir())).convert("RGB")], text=[prompt], return_tensors="pt")
    base = AutoModelForImageTextToText.from_pretrained(base_dir, local_files_only=True).eval()
    with torch.no_grad():
        before = base(**inputs).logits
    tuned = PeftModel.from_pretrained(base, str(run_dir / "train" / "adapter")).eval()
    with torch.no_grad():
        after = tuned(**inputs).logits
        # With its adapter disabled the model is the base again: the difference is the adapter's.
        with tuned.disable_adapter():
            disabled = tuned(**inputs).logits
    assert torch.allclose(disabled, before)
    assert (after - before).abs().max().item() > 1e-4


def test_the_hf_export_is_the_pairs_and_trl_trains_on_it_unchanged(run_dir, tmp_path):
    """`orchestrate dataset export --format hf` on the real run: load_dataset("parquet") gives
    the pairs of pairs.jsonl with equal images, and TRL's DPOTrainer takes the loaded dataset as
    it is (one step on the tiny LLaVA with LoRA)."""
    from datasets import load_dataset
    from peft import LoraConfig
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    from pds_dpo_workers.kinds.dpo_trainer import DEFAULT_TARGET_MODULES
    from pds_dpo_workers.models.tiny import tiny_dir

    r = subprocess.run(
        ["node", str(BIN), "dataset", "export", "--format", "hf", "t1", "--store", str(run_dir.parents[1])],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "dataset/hf" in r.stdout
    ds = load_dataset("parquet", data_files=str(run_dir / "dataset" / "hf" / "data" / "*.parquet"), split="train")
    pairs = [json.loads(line) for line in (run_dir / "dataset" / "pairs.jsonl").read_text().splitlines()]
    assert len(ds) == len(pairs)
    for row, pair in zip(ds, pairs, strict=True):
        assert (row["id"], row["prompt"], row["chosen"], row["rejected"]) == (pair["id"], pair["prompt"], pair["chosen"], pair["rejected"])
        assert [im.tobytes() for im in row["images"]] == [Image.open(run_dir / p).tobytes() for p in pair["images"]]
        assert row["image_sha256"] == pair["metadata"]["image"]["sha256"] and json.loads(row["metadata"]) == pair["metadata"]
    card = (run_dir / "dataset" / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "\nsource_models:\n" in card and "size_categories:\n- n<1K" in card

    base_dir = tiny_dir(str(run_dir.parents[1]), "llava", 1)
    trainer = DPOTrainer(
        model=AutoModelForImageTextToText.from_pretrained(base_dir, local_files_only=True),
        args=DPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True),
        train_dataset=ds,
        processing_class=AutoProcessor.from_pretrained(base_dir, local_files_only=True),
        peft_config=LoraConfig(r=2, lora_alpha=4, target_modules=DEFAULT_TARGET_MODULES, task_type="CAUSAL_LM"),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    (logged,) = [h for h in trainer.state.log_history if "loss" in h]
    assert logged["loss"] > 0 and logged["logps/chosen"] < 0


def test_the_run_logged_to_tensorboard_and_showed_its_workers_loading(run_dir):
    """train.report_to: [tensorboard] through the orchestrator: the trainer's event file under
    the run's train/tensorboard/ has the loss of each step in train/metrics.jsonl; the run's
    output showed each worker's load steps as they happened."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "train" / "tensorboard"))
    events.Reload()
    metrics = [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    logged = {s.step: s.value for s in events.Scalars("train/loss")}
    assert logged.keys() == {m["step"] for m in metrics}
    assert all(abs(logged[m["step"]] - m["loss"]) <= 1e-5 * max(1.0, abs(m["loss"])) for m in metrics)
    stderr = (run_dir.parents[2] / "run.stderr").read_text().splitlines()
    assert any(line.startswith("worker a: loading weights ") for line in stderr), stderr
    assert any(line.startswith("train/loading the model") for line in stderr), stderr

