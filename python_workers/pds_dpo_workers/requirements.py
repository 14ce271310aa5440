"""Optional packages a worker needs for what its configuration asks (`serve --require`).

Checked first in the load, before torch is imported or any weights are read, so a missing
one fails the worker within seconds with the package, what needs it and how to install it.
"""

from __future__ import annotations

import importlib.util
import sys

from pds_dpo_workers.errors import MissingPackage

# Package -> (what needs it, the extra of pds_dpo_workers that installs it).
OPTIONAL = {
    "bitsandbytes": ("4-bit and 8-bit quantization", "quant"),
    "deepspeed": ("DeepSpeed (ZeRO) training", "deepspeed"),
    "accelerate": ("multi-GPU training", None),
    "tensorboard": ("train.report_to: tensorboard", None),
    "wandb": ("train.report_to: wandb", "wandb"),
}


def check_requirements(packages: list[str]) -> None:
    """Raise MissingPackage naming every package of `packages` that cannot be imported."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if not missing:
        return
    parts = []
    for p in missing:
        why, extra = OPTIONAL.get(p, ("this configuration", None))
        hint = f"pip install 'pds_dpo_workers[{extra}]'" if extra else f"pip install {p}"
        parts.append(f"{p} (for {why}; {hint})")
    raise MissingPackage(f"missing package{'s' if len(parts) > 1 else ''} in {sys.executable}: {'; '.join(parts)}")
