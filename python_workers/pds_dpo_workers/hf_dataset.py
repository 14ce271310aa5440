"""A run's preference pairs as a Hugging Face `datasets` dataset: dataset/hf/ beside pairs.jsonl.

dataset/hf/data/train-00000-of-00001.parquet holds one row a pair in the shape TRL's
DPOTrainer takes for vision-language models: `images` (a list of the Image feature, the PNG
bytes inside the file, so the directory is self-contained), `prompt`, `chosen` and `rejected`
(conversations: lists of {role, content}), then `id` and the metadata: the scalar fields of
pairs.jsonl's metadata as columns of their own and the whole record as JSON (`metadata`).
dataset/hf/README.md is its dataset card, with the Hub's YAML header (license,
task_categories, size_categories, the parquet config) and the models the pairs came from
with their licences (from each model's own card where it is on this machine).

It runs where the run directory is (`python -m pds_dpo_workers export-hf`, which
`orchestrate dataset export --format hf` starts), not in a worker: it reads only the run's
files, so it is the same for every runtime, and a run without a trainer can be exported.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pds_dpo_workers.errors import WorkerError

DATA_FILE = "data/train-00000-of-00001.parquet"
# The scalar metadata of a run's pairs.jsonl, each a column: (column, path in "metadata", type).
METADATA_COLUMNS = (
    ("category", ("category",), "string"),
    ("t2i_prompt", ("t2i_prompt",), "string"),
    ("instruction", ("instruction",), "string"),
    ("image_sha256", ("image", "sha256"), "string"),
    ("image_score", ("image", "score"), "float64"),
    ("guidance_scale", ("image", "guidance_scale"), "float64"),
    ("chosen_id", ("chosen_id",), "string"),
    ("rejected_id", ("rejected_id",), "string"),
    ("margin", ("margin",), "float64"),
    ("similarity", ("similarity",), "float64"),
)
# Roles of the models whose outputs make up the pairs, by stage and field of the config.
SOURCE_ROLES = (("images", "generator", "image generator"), ("images", "scorer", "image scorer"), ("responses", "responders", "responder"), ("responses", "scorer", "response scorer"))


class DatasetExportError(WorkerError):
    """The run's dataset cannot be exported as it is (a missing or malformed file, a bad image)."""

    code = "invalid_dataset"


def size_category(n: int) -> str:
    """Pure: the Hub's size_categories bucket for n rows."""
    if n < 1000:
        return "n<1K"
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]
    k = min(int(math.log10(n)) - 3, len(names) - 2)
    return f"{names[k]}<n<{names[k + 1]}"


def _conversation(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DatasetExportError(f"{where}: expected a list of messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DatasetExportError(f"{where}[{i}]: expected {{role, content}} with text content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _dig(meta: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(meta, dict):
            return None
        meta = meta.get(key)
    return meta


def row_of(pair: Any, where: str) -> dict:
    """Pure: one pairs.jsonl record -> its dataset row, images still as paths."""
    if not isinstance(pair, dict):
        raise DatasetExportError(f"{where}: expected a JSON object")
    if not isinstance(pair.get("id"), str) or not pair["id"]:
        raise DatasetExportError(f"{where}: id: expected a non-empty string")
    images = pair.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(p, str) and p for p in images):
        raise DatasetExportError(f"{where}: images: expected a list of paths")
    meta = pair.get("metadata")
    row = {
        "images": images,
        "prompt": _conversation(pair.get("prompt"), f"{where}: prompt"),
        "chosen": _conversation(pair.get("chosen"), f"{where}: chosen"),
        "rejected": _conversation(pair.get("rejected"), f"{where}: rejected"),
        "id": pair["id"],
    }
    for column, path, kind in METADATA_COLUMNS:
        value = _dig(meta, path)
        ok = isinstance(value, str) if kind == "string" else isinstance(value, (int, float)) and not isinstance(value, bool)
        row[column] = (value if kind == "string" else float(value)) if ok else None
    row["metadata"] = json.dumps(meta, sort_keys=True) if meta is not None else None
    return row


def read_pairs(run_dir: Path) -> list[dict]:
    """dataset/pairs.jsonl of the run as rows (row_of), each bad line named by its number."""
    path = run_dir / "dataset" / "pairs.jsonl"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DatasetExportError(f"{path}: not found (the run has no dataset yet: it is written by the responses stage, or by the train stage from stages.train.dataset)") from None
    except UnicodeDecodeError as e:
        raise DatasetExportError(f"{path}: not UTF-8 at byte {e.start}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except ValueError as e:
            raise DatasetExportError(f"{path} line {n}: not JSON: {e}") from None
        rows.append(row_of(pair, f"{path} line {n}"))
    if not rows:
        raise DatasetExportError(f"{path}: no pairs")
    return rows


def image_bytes(run_dir: Path, rel: str, where: str) -> dict:
    """The Image feature's value for one image of the run: its bytes (checked to decode) and its name."""
    from PIL import Image, UnidentifiedImageError

    from pds_dpo_workers.kinds.dpo_trainer import image_path

    # As the trainer reads it: relative to the run directory, where pairs.jsonl's paths are.
    path = Path(image_path(rel, str(run_dir)))
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except FileNotFoundError:
        raise DatasetExportError(f"{where}: image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetExportError(f"{where}: image {path} cannot be decoded: {e}") from None
    return {"bytes": data, "path": os.path.basename(rel)}


def features():
    from datasets import Features, Image, List, Value

    message = List({"role": Value("string"), "content": Value("string")})
    return Features(
        {
            "images": List(Image()),
            "prompt": message,
            "chosen": message,
            "rejected": message,
            "id": Value("string"),
            **{column: Value(kind) for column, _, kind in METADATA_COLUMNS},
            "metadata": Value("string"),
        }
    )


def model_license(spec: dict, revision: str, store_root: Path | None) -> str:
    """A source model's licence as its own model card (README.md front matter) says, where the
    card is on this machine; "none" for the project's tiny random models; else "unknown"."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.repocard import metadata_load

    source = spec.get("source", "")
    cards: list[str] = []
    if source.endswith("TINY"):
        return "none (a tiny random-weight model built offline)"
    if source.endswith("PATH") and spec.get("path"):
        cards.append(os.path.join(spec["path"], "README.md"))
    elif spec.get("id"):
        for cache_dir in [None] + ([str(store_root / "hf" / "hub")] if store_root else []):
            found = try_to_load_from_cache(spec["id"], "README.md", cache_dir=cache_dir, revision=revision or None)
            if isinstance(found, str):
                cards.append(found)
    for card in cards:
        try:
            meta = metadata_load(card) or {}
        except (OSError, ValueError):
            continue
        if meta.get("license"):
            name = meta.get("license_name")
            return f"{meta['license']} ({name})" if meta["license"] == "other" and name else str(meta["license"])
    return "unknown (see the model's card)"


def source_models(manifest: dict, store_root: Path | None) -> list[dict]:
    """The models the pairs came from (config stages -> manifest workers), each with its licence."""
    stages = manifest.get("config", {}).get("resolved", {}).get("stages", {})
    out: list[dict] = []
    for stage, field, role in SOURCE_ROLES:
        named = (stages.get(stage) or {}).get(field)
        names = named if isinstance(named, list) else [named] if named else []
        for name in names:
            name = name["worker"] if isinstance(name, dict) else name
            model = (manifest.get("workers", {}).get(name, {}).get("info") or {}).get("model") or {}
            spec = model.get("spec") or {}
            revision = model.get("resolvedRevision", "")
            out.append(
                {
                    "role": role,
                    "worker": name,
                    "model": spec.get("id") or spec.get("path") or "?",
                    "revision": revision,
                    "license": model_license(spec, revision, store_root),
                }
            )
    return out


def card(name: str, run_id: str, rows: int, models: list[dict], license: str | None, source_file: str | None) -> str:
    """Pure: the dataset card (README.md) with the Hub's YAML header."""
    from huggingface_hub import DatasetCardData

    licences = {m["license"] for m in models}
    chosen = license or (next(iter(licences)) if len(licences) == 1 and " " not in next(iter(licences)) else "other")
    data = DatasetCardData(
        license=chosen,
        **({"license_name": "source-models", "license_link": "README.md"} if chosen == "other" and not license else {}),
        language=["en"],
        pretty_name=name,
        task_categories=["image-text-to-text"],
        size_categories=[size_category(rows)],
        tags=["dpo", "preference", "synthetic", "vision-language", "pds-dpo"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
        source_models=[{"model": m["model"], "role": m["role"], "license": m["license"]} for m in models],
    )
    table = "\n".join(f"| {m['role']} | {m['worker']} | {m['model']} | {m['revision'] or '-'} | {m['license']} |" for m in models)
    sources = (
        f"| role | worker | model | revision | licence |\n| --- | --- | --- | --- | --- |\n{table}"
        if models
        else f"Imported from `{source_file}` (stages.train.dataset); its models are not recorded here." if source_file else "Not recorded."
    )
    return f"""---
{data.to_yaml()}
---

# {name}

{rows} preference pairs (one image, a question, a chosen and a rejected answer each) from the
PDS-DPO run `{run_id}`, in the shape TRL's `DPOTrainer` takes for vision-language models:
`images`, `prompt`, `chosen`, `rejected`, then `id` and the pair's metadata (`metadata` holds
the whole record as JSON).

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files="dataset/hf/data/*.parquet", split="train")
```

## Source models

{sources}

The licence of the pairs follows the terms of the models that made them: read each one's
licence before you publish or use this dataset.
"""


def export(run_dir: str | Path, out_dir: str | Path | None = None, license: str | None = None) -> dict:
    """Writes dataset/hf/ (or out_dir) for the run; returns what was written. Replaces an
    earlier export whole, and only once the new one is complete."""
    run = Path(run_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else run / "dataset" / "hf"
    rows = read_pairs(run)
    pairs_path = run / "dataset" / "pairs.jsonl"
    for n, row in enumerate(rows, 1):
        row["images"] = [image_bytes(run, p, f"{pairs_path} pair {n} ({row['id']})") for p in row["images"]]
    manifest_path = run / "manifest.json"
    manifest: dict = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as e:
            raise DatasetExportError(f"{manifest_path}: not JSON: {e}") from None
    store_root = run.parents[1] if run.parent.name == "runs" else None
    models = source_models(manifest, store_root)
    imported = ((manifest.get("stages") or {}).get("train") or {}).get("dataset") or {}
    name = (manifest.get("config", {}).get("resolved", {}) or {}).get("name") or run.name
    # Imported once the run's files are known good: a bad one is named within a second.
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_list(rows, features=features())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".hf-", dir=out.parent))
    try:
        (tmp / "data").mkdir()
        ds.to_parquet(str(tmp / DATA_FILE))
        (tmp / "README.md").write_text(card(name, manifest.get("run_id", run.name), len(rows), models, license, (imported.get("source") or {}).get("path")))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": str(out), "pairs": len(rows), "files": [DATA_FILE, "README.md"], "models": models}
