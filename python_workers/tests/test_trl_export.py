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
  train: {{trainer: dpo, lora: {{r: 4, alpha: 8, dropout: 0.0}}, dpo: {{beta: 0.1}}, optim: {{lr: 0.05, max_steps: 2, batch_size: 2}}}}
"""
    )
    store = d / "store"
    r = subprocess.run(
        ["node", str(BIN), "run", str(d / "experiment.yaml"), "--store", str(store), "--run-id", "t1", "--until", "train"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 0, r.stderr
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
