"""What a worker runs on: library versions, device, a hash of the Python environment."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import sys
from functools import lru_cache

from pds_dpo_workers.proto import common_pb2

LIBRARIES = ("torch", "diffusers", "transformers", "tokenizers", "safetensors", "trl", "peft", "accelerate", "bitsandbytes", "deepspeed", "grpcio", "protobuf", "pillow", "numpy")


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def python_env_hash() -> str:
    """sha256 of the sorted name==version list of installed distributions."""
    names = sorted({f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in md.distributions()})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=1)
def device_info() -> common_pb2.DeviceInfo:
    torch = sys.modules.get("torch")
    # A worker that never loaded torch (the benchmark's null scorer) computes on the CPU;
    # importing torch just to say so took seconds of CPU per process.
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return common_pb2.DeviceInfo(type="cuda", name=props.name, memory_bytes=props.total_memory, count=torch.cuda.device_count())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return common_pb2.DeviceInfo(type="cpu", name=os.uname().machine, memory_bytes=mem, count=1)


def make_deterministic() -> None:
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def check_gpus(expected: int) -> None:
    """The GPUs this worker was placed on (runtime.devices) exist: a clear error otherwise."""
    import torch

    from pds_dpo_workers.errors import ModelLoadError

    seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if seen < expected:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise ModelLoadError(f"placed on {expected} GPU{'s' if expected > 1 else ''} (runtime.devices), but this host shows {seen or 'none'}{where}")
