"""TRL accepts the exported dataset unchanged: pairs.jsonl from a real orchestrator run,
loaded with `datasets`, through TRL's vision preference collator with the tiny LLaVA processor."""

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
stages:
  images: {{prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2, size: 64}}
  responses: {{responders: [a, b], decoding: {{max_new_tokens: 12}}, scorer: rm, pairs: {{drop_truncated: false}}}}
"""
    )
    store = d / "store"
    r = subprocess.run(
        ["node", str(BIN), "run", str(d / "experiment.yaml"), "--store", str(store), "--run-id", "t1", "--until", "responses"],
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
