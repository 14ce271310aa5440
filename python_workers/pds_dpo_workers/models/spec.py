"""Model specs -> a local directory to `from_pretrained`, plus its fingerprint.

tiny: built offline into the cache (see tiny.py). hf: a hub id at a pinned revision,
fetched (or found in the HF cache when HF_HUB_OFFLINE=1) with the token from HF_TOKEN.
path: a local directory. Whatever the source, the model is then loaded from a directory
through the library's own `from_pretrained(..., local_files_only=True)`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from google.protobuf import json_format

from pds_dpo_workers.errors import InvalidModelSpec, ModelLoadError
from pds_dpo_workers.models import tiny
from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.store import sha256_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SKIP = {".gitattributes", "README.md"}


@dataclass
class ResolvedModel:
    spec: common_pb2.ModelSpec
    directory: str
    resolved_revision: str
    files: list[common_pb2.WeightFile] = field(default_factory=list)

    @property
    def weights_sha256(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.path}\0{f.sha256}\n".encode())
        return h.hexdigest()

    def loaded_model(self, model_class: str) -> common_pb2.LoadedModel:
        return common_pb2.LoadedModel(
            spec=self.spec,
            resolved_revision=self.resolved_revision,
            weights_sha256=self.weights_sha256,
            files=self.files,
            model_class=model_class,
        )


def parse_spec(text: str) -> common_pb2.ModelSpec:
    try:
        spec = json_format.Parse(text, common_pb2.ModelSpec())
    except json_format.ParseError as e:
        raise InvalidModelSpec(f"model spec is not valid: {e}") from None
    if spec.source == common_pb2.MODEL_SOURCE_UNSPECIFIED:
        raise InvalidModelSpec("model spec has no source (tiny, hf or path)")
    if spec.source in (common_pb2.MODEL_SOURCE_TINY, common_pb2.MODEL_SOURCE_HF) and not spec.id:
        raise InvalidModelSpec("model spec needs an id")
    if spec.source == common_pb2.MODEL_SOURCE_PATH and not spec.path:
        raise InvalidModelSpec("model spec of source path needs a path")
    return spec


def _file_sha256(path: str) -> str:
    # In the HF cache an LFS file is a link to a blob named by its sha256: no need to
    # read gigabytes of weights to know their hash.
    real = os.path.realpath(path)
    name = os.path.basename(real)
    if real != path and _HEX64.match(name):
        return name
    return sha256_file(real)


def list_files(directory: str) -> list[common_pb2.WeightFile]:
    out = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name in _SKIP or name.startswith("."):
                continue
            p = os.path.join(root, name)
            rel = os.path.relpath(p, directory).replace(os.sep, "/")
            out.append(common_pb2.WeightFile(path=rel, sha256=_file_sha256(p), bytes=os.path.getsize(p)))
    out.sort(key=lambda f: f.path)
    return out


def resolve(spec: common_pb2.ModelSpec, cache_root: str) -> ResolvedModel:
    if spec.source == common_pb2.MODEL_SOURCE_TINY:
        directory = tiny.ensure_tiny(cache_root, spec.id, int(spec.seed))
        revision = f"tiny-v{tiny.BUILDER_VERSION}"
    elif spec.source == common_pb2.MODEL_SOURCE_PATH:
        directory = os.path.abspath(spec.path)
        if not os.path.isdir(directory):
            raise ModelLoadError(f"model path {spec.path} is not a directory")
        revision = "local"
    elif spec.source == common_pb2.MODEL_SOURCE_HF:
        directory, revision = _hf_snapshot(spec)
    else:
        raise InvalidModelSpec("model spec has no source")
    return ResolvedModel(spec=spec, directory=directory, resolved_revision=revision, files=list_files(directory))


def _hf_snapshot(spec: common_pb2.ModelSpec) -> tuple[str, str]:
    from huggingface_hub import snapshot_download

    if not spec.revision:
        raise InvalidModelSpec(f"hf model {spec.id} needs a pinned revision")
    try:
        # The token comes from HF_TOKEN in the environment and is never logged.
        directory = snapshot_download(repo_id=spec.id, revision=spec.revision, token=os.environ.get("HF_TOKEN") or None)
    except Exception as e:  # noqa: BLE001 - any hub failure is a load failure with its class name
        raise ModelLoadError(f"cannot fetch {spec.id}@{spec.revision}: {type(e).__name__}") from None
    # Snapshot directories are named by the commit the revision resolved to.
    return directory, os.path.basename(os.path.normpath(directory))


def torch_dtype(spec: common_pb2.ModelSpec, device: str):
    import torch

    name = spec.dtype or ("float32" if device == "cpu" else "float16")
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise InvalidModelSpec(f"unknown dtype {spec.dtype!r}; use float32, float16 or bfloat16") from None
