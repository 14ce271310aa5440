"""The committed fixtures (configs/benchmarks) are what the generator writes: regenerated into
a temporary directory and compared, text byte for byte and images by their decoded pixels
(a Pillow or zlib upgrade may encode the same pixels differently). Object-HalBench's
question file holds its images as base64: compared row by row, the images by pixels."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from worker_harness import worker_env

FIXTURES = Path(__file__).resolve().parents[2] / "configs" / "benchmarks"
REGENERATE = "python -m pds_dpo_workers benchmark-fixtures configs/benchmarks"


def pixels(data: bytes) -> tuple:
    img = Image.open(io.BytesIO(data))
    return img.mode, img.size, img.tobytes()


def comparable(path: Path, data: bytes):
    if path.suffix == ".png":
        return pixels(data)
    if path.name == "obj_halbench_300_with_image.jsonl":
        rows = [json.loads(line) for line in data.decode().splitlines()]
        return [{**r, "image": pixels(base64.b64decode(r["image"]))} for r in rows]
    return data


def test_the_committed_fixtures_are_the_generators(tmp_path):
    subprocess.run([sys.executable, "-m", "pds_dpo_workers", "benchmark-fixtures", str(tmp_path)], check=True, env=worker_env(), timeout=120)
    fresh = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"}
    assert fresh == committed, f"fixture files differ: run {REGENERATE}"
    assert {p.parts[0] for p in fresh} == {"pope", "object-halbench", "amber", "mmhal"}
    for rel in sorted(fresh):
        new, old = (tmp_path / rel).read_bytes(), (FIXTURES / rel).read_bytes()
        assert comparable(rel, new) == comparable(rel, old), f"{rel} is stale: run {REGENERATE}"
