"""Model specs -> a local directory to `from_pretrained`, plus its fingerprint.

tiny: built offline into the cache (see tiny.py). hf: a hub id at a pinned revision,
fetched (or found in the HF cache when HF_HUB_OFFLINE=1) with the token from HF_TOKEN.
path: a local directory. Whatever the source, the model is then loaded from a directory
through the library's own `from_pretrained(..., local_files_only=True)`.

A model directory whose configs name code of its own (`auto_map`, as ArmoRM's config.json
does) resolves only with the model option trust_remote_code "true" (the config's
model.trust_remote_code): otherwise transformers would either run that code or, for a known
model_type, silently load its built-in class with a random head in place of the custom one.
The refusal is one line and comes before any library call (transformers may prompt on stdin).
A kind that runs such code calls prepare_remote_code (its copy goes under the cache root, not
~/.cache/huggingface/modules), passes trust_remote_code=True to from_pretrained, and records
the code files with loaded_model(..., remote_code=ran_remote_code(model, tokenizer)).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
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
# The package transformers imports a model's own code under.
_DYNAMIC_PACKAGE = "transformers_modules"


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

    @property
    def trust_remote_code(self) -> bool:
        return trusts_remote_code(self.spec)

    @property
    def code_files(self) -> list[common_pb2.WeightFile]:
        """The directory's Python files: the code an auto_map entry (and its relative
        imports) can reach, listed whole rather than traced."""
        return [f for f in self.files if f.path.endswith(".py")]

    def loaded_model(self, model_class: str, remote_code: bool = False) -> common_pb2.LoadedModel:
        """remote_code: the model's own code ran (see ran_remote_code); its files are listed."""
        return common_pb2.LoadedModel(
            spec=self.spec,
            resolved_revision=self.resolved_revision,
            weights_sha256=self.weights_sha256,
            files=self.files,
            model_class=model_class,
            remote_code=self.code_files if remote_code else [],
        )


def trusts_remote_code(spec: common_pb2.ModelSpec) -> bool:
    return spec.options.get("trust_remote_code") == "true"


def auto_map_refs(directory: str) -> dict[str, list[str]]:
    """{config file: the class references of its auto_map} for the directory's top-level
    *config.json files (config.json, tokenizer_config.json, processor configs)."""
    out: dict[str, list[str]] = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.endswith("config.json") or not os.path.isfile(path) or os.path.getsize(path) > 4 << 20:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # not ours to judge here; the library's load reports it
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not isinstance(auto_map, dict) or not auto_map:
            continue
        refs = []
        for value in auto_map.values():
            # A reference is "module.Class" or "repo--module.Class"; tokenizers map to a
            # [slow, fast] pair, either of which may be null.
            for ref in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(ref, str) and ref and ref not in refs:
                    refs.append(ref)
        if refs:
            out[name] = refs
    return out


def _code_file(directory: str, ref: str) -> str:
    repo, _, ref = ref.rpartition("--")
    module_file = ref.rsplit(".", 1)[0].replace(".", "/") + ".py"
    return f"{repo}:{module_file}" if repo else os.path.join(directory, module_file)


def check_remote_code(directory: str, spec: common_pb2.ModelSpec) -> None:
    """Refuses (one line, before any library call that could prompt on stdin) a model whose
    configs name code of its own unless the spec trusts remote code."""
    if trusts_remote_code(spec):
        return
    refs = auto_map_refs(directory)
    if not refs:
        return
    files = list(dict.fromkeys(_code_file(directory, ref) for found in refs.values() for ref in found))
    message = (
        f"{', '.join(files)} {'is' if len(files) == 1 else 'are'} the model's own code (auto_map in {', '.join(refs)}); "
        "set model.trust_remote_code: true to run it"
    )
    raise ModelLoadError(" ".join(message.splitlines()))


def ran_remote_code(*loaded) -> bool:
    """Whether any of the loaded objects (model, tokenizer, processor) is of a class from
    the model's own code, which transformers imports under transformers_modules."""
    return any(type(obj).__module__.split(".")[0] == _DYNAMIC_PACKAGE for obj in loaded if obj is not None)


def modules_cache(cache_root: str) -> str:
    """Makes transformers copy and import a model's own code under <cache_root>/hf-modules
    instead of HF_MODULES_CACHE (~/.cache/huggingface/modules), and returns that directory.

    transformers reads HF_MODULES_CACHE once, when it is first imported (and a tiny build
    may have imported it already), so its module global is set as well as the environment
    (for child processes such as accelerate ranks).
    """
    path = os.path.join(os.path.abspath(cache_root), "hf-modules")
    os.makedirs(path, exist_ok=True)
    os.environ["HF_MODULES_CACHE"] = path
    import transformers.dynamic_module_utils as dynamic
    import transformers.utils.hub as hub

    dynamic.HF_MODULES_CACHE = hub.HF_MODULES_CACHE = path
    return path


def prepare_remote_code(resolved: ResolvedModel, cache_root: str) -> None:
    """Copies and imports the classes the model's auto_map names, once, under a file lock.

    transformers copies a local model's code into <modules cache>/transformers_modules/
    <directory name>/<hash of the code>/ and imports it from there. Two workers on the same
    cache root (the store) may do so at once, and its copy is a plain truncate-and-write: one
    worker could import the file while the other rewrites it. Under the lock the first
    worker writes the files whole; every later load, in any process, finds identical files
    (the directory is named by their hash), writes nothing and imports them again as they are.
    """
    path = modules_cache(cache_root)
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    with open(os.path.join(path, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for refs in auto_map_refs(resolved.directory).values():
                for ref in refs:
                    try:
                        get_class_from_dynamic_module(ref, resolved.directory, local_files_only=True)
                    except Exception as e:  # noqa: BLE001 - any failure of the model's own code is a load failure
                        first = (str(e).strip().splitlines() or [""])[0]
                        raise ModelLoadError(
                            f"cannot import {ref} from {_code_file(resolved.directory, ref)}: {type(e).__name__}: {first}"
                        ) from None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
    from pds_dpo_workers.load_progress import Counter

    paths = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [os.path.join(root, name) for name in sorted(files) if name not in _SKIP and not name.startswith(".")]
    # Hashing a large model's files takes a while: a load step of its own.
    hashed = Counter("hashing the model files", len(paths))
    out = []
    for p in paths:
        rel = os.path.relpath(p, directory).replace(os.sep, "/")
        out.append(common_pb2.WeightFile(path=rel, sha256=_file_sha256(p), bytes=os.path.getsize(p)))
        hashed.advance()
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
    check_remote_code(directory, spec)
    return ResolvedModel(spec=spec, directory=directory, resolved_revision=revision, files=list_files(directory))


def _hf_snapshot(spec: common_pb2.ModelSpec) -> tuple[str, str]:
    if not spec.revision:
        raise InvalidModelSpec(f"hf model {spec.id} needs a pinned revision")
    directory = hf_snapshot(spec.id, spec.revision)
    # Snapshot directories are named by the commit the revision resolved to.
    return directory, os.path.basename(os.path.normpath(directory))


def hf_snapshot(repo_id: str, revision: str, allow_patterns: list[str] | None = None) -> str:
    """The local snapshot of repo_id@revision: from the HF cache when it is there (no network),
    else downloaded. Fails at once, in one line, when it is neither cached nor reachable."""
    from huggingface_hub import HfApi, constants, snapshot_download

    # The token comes from HF_TOKEN in the environment and is never logged.
    kwargs = {"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns, "token": os.environ.get("HF_TOKEN") or None}
    try:
        return snapshot_download(local_files_only=True, **kwargs)
    except Exception:  # noqa: BLE001 - not (completely) cached: fetch it below
        pass
    where = f"{repo_id}@{revision} is neither a local directory nor in the HF cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(f"{where}, and HF_HUB_OFFLINE is set: fetch it on a connected machine into that cache first") from None
    try:
        # One request without retries first: the download retries an unreachable hub with
        # backoff for half a minute; this says within seconds that it cannot be reached.
        HfApi().model_info(repo_id, revision=revision, token=kwargs["token"], timeout=10)
        return snapshot_download(**kwargs)
    except Exception as e:  # noqa: BLE001 - any hub failure is a load failure, named by its class
        reason = _hub_failure(e)
        raise ModelLoadError(f"{where}, and {reason}") from None


def _hub_failure(e: Exception) -> str:
    """Why a download failed, in words and without any request detail (tokens, headers)."""
    from huggingface_hub import errors

    if isinstance(e, errors.GatedRepoError):
        return "the repository is gated: accept its terms on the hub and export HF_TOKEN"
    if isinstance(e, errors.RepositoryNotFoundError):
        return "the hub has no such repository (or it is private: export HF_TOKEN)"
    if isinstance(e, errors.RevisionNotFoundError):
        return "the hub has no such revision"
    # Connection failures: httpx's ConnectError or a timeout (from the probe), or
    # LocalEntryNotFoundError wrapping one (from the download).
    cause = (e.__cause__ or e.__context__) if isinstance(e, errors.LocalEntryNotFoundError) else e
    return f"the hub cannot be reached ({type(cause or e).__name__})"


def torch_dtype(spec: common_pb2.ModelSpec, device: str):
    import torch

    name = spec.dtype or ("float32" if device == "cpu" else "float16")
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise InvalidModelSpec(f"unknown dtype {spec.dtype!r}; use float32, float16 or bfloat16") from None
