"""The Hugging Face datasets export (hf_dataset): the parquet loads back as the pairs of
pairs.jsonl with equal images, the card has the Hub's YAML header, and a bad run directory is
one line naming the file, the line and the field. No worker, no model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pds_dpo_workers.hf_dataset import DatasetExportError, export, size_category
from worker_harness import pairs_dataset


def make_run(root: Path, n: int = 3) -> Path:
    run = root / "runs" / "r1"
    (run / "dataset").mkdir(parents=True)
    lines = [json.loads(line) for line in pairs_dataset(run, n=n).decode().splitlines()]
    # A run's pairs carry metadata; the second one has none (an imported dataset may not).
    lines[0]["metadata"] = {"category": "animals", "image": {"sha256": "ab" * 32, "score": 0.5, "guidance_scale": 5}, "margin": 1.25, "candidates": [{"id": "a"}]}
    (run / "dataset" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    manifest = {
        "run_id": "r1",
        "config": {"resolved": {"name": "tiny-exp", "stages": {"images": {"generator": "sd", "scorer": "pick"}, "responses": {"responders": ["a"], "scorer": [{"worker": "rm", "weight": 1}]}}}},
        "workers": {
            "sd": {"info": {"model": {"spec": {"source": "MODEL_SOURCE_TINY", "id": "sd"}, "resolvedRevision": "tiny-v1"}}},
            "pick": {"info": {"model": {"spec": {"source": "MODEL_SOURCE_PATH", "path": str(root / "clip")}, "resolvedRevision": "local"}}},
            "a": {"info": {"model": {"spec": {"source": "MODEL_SOURCE_HF", "id": "org/not-cached"}, "resolvedRevision": "abc"}}},
        },
    }
    (root / "clip").mkdir()
    (root / "clip" / "README.md").write_text("---\nlicense: mit\n---\n# a model card\n")
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_the_export_loads_back_as_the_pairs_with_equal_images(tmp_path):
    from datasets import load_dataset
    from huggingface_hub.repocard import metadata_load
    from PIL import Image

    run = make_run(tmp_path)
    written = export(run)
    assert written["pairs"] == 3
    ds = load_dataset("parquet", data_files=str(run / "dataset" / "hf" / "data" / "*.parquet"), split="train")
    pairs = [json.loads(line) for line in (run / "dataset" / "pairs.jsonl").read_text().splitlines()]
    assert ds.column_names[:5] == ["images", "prompt", "chosen", "rejected", "id"]
    for row, pair in zip(ds, pairs, strict=True):
        assert (row["id"], row["prompt"], row["chosen"], row["rejected"]) == (pair["id"], pair["prompt"], pair["chosen"], pair["rejected"])
        (image,) = row["images"]
        assert image.tobytes() == Image.open(run / pair["images"][0]).convert("RGB").tobytes()
    assert ds[0]["category"] == "animals" and ds[0]["guidance_scale"] == 5.0 and ds[0]["margin"] == 1.25
    assert json.loads(ds[0]["metadata"])["candidates"] == [{"id": "a"}]
    assert ds[1]["category"] is None and ds[1]["metadata"] is None

    card = run / "dataset" / "hf" / "README.md"
    meta = metadata_load(card)
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["image-text-to-text"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    # Licences from each model's own card where there is one; the mix makes the dataset's "other".
    licences = {m["model"]: m["license"] for m in meta["source_models"]}
    assert licences[str(tmp_path / "clip")] == "mit"
    assert licences["sd"].startswith("none") and licences["org/not-cached"].startswith("unknown")
    assert meta["license"] == "other" and meta["pretty_name"] == "tiny-exp"
    assert [m["role"] for m in meta["source_models"]] == ["image generator", "image scorer", "responder", "response scorer"]

    # --license overrides; a second export replaces the first whole.
    export(run, license="cc-by-4.0")
    assert metadata_load(card)["license"] == "cc-by-4.0"
    assert sorted(p.name for p in (run / "dataset" / "hf").rglob("*") if p.is_file()) == ["README.md", "train-00000-of-00001.parquet"]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda run: (run / "dataset" / "pairs.jsonl").unlink(), r"dataset/pairs.jsonl: not found"),
        (lambda run: (run / "dataset" / "pairs.jsonl").write_text('{"id": "x"\n'), r"dataset/pairs.jsonl line 1: not JSON"),
        (lambda run: (run / "dataset" / "pairs.jsonl").write_text("\n"), r"dataset/pairs.jsonl: no pairs"),
        (lambda run: _edit(run, 2, chosen="text"), r"dataset/pairs.jsonl line 2: chosen: expected a list of messages"),
        (lambda run: _edit(run, 1, prompt=[{"role": "user", "content": [{"type": "text"}]}]), r"line 1: prompt\[0\]: expected \{role, content\} with text content"),
        (lambda run: _edit(run, 3, images=[]), r"line 3: images: expected a list of paths"),
        (lambda run: (run / "images" / "p1.png").unlink(), r"pair 2 \(p1\): image not found: .*images/p1.png"),
        (lambda run: (run / "images" / "p0.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"), r"pair 1 \(p0\): image .*p0.png cannot be decoded"),
    ],
)
def test_a_bad_run_directory_is_one_line_naming_what(tmp_path, corrupt, message):
    run = make_run(tmp_path)
    corrupt(run)
    with pytest.raises(DatasetExportError, match=message) as e:
        export(run)
    assert "\n" not in str(e.value)
    assert not (run / "dataset" / "hf").exists()


def _edit(run: Path, line: int, **fields) -> None:
    path = run / "dataset" / "pairs.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[line - 1].update(fields)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_subcommand_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pds_dpo_workers", "export-hf", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"pds_dpo_workers export-hf: {tmp_path}/dataset/pairs.jsonl: not found")


def test_size_categories_are_the_hubs():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 250_000, 1_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]
