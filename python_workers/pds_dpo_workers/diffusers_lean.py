"""diffusers' pipelines without its bitsandbytes and peft integrations.

diffusers imports bitsandbytes (for its quantizers) and peft (for LoRA loading, and peft
imports bitsandbytes) whenever they are installed, and bitsandbytes compiles its kernels'
wrappers with torch.compile at import, pulling in torch's dynamo: about 1.5 s of CPU on each
generator's start, before its model loads. The image generator neither quantizes nor loads
LoRA weights through diffusers, so those integrations are switched off before any of
diffusers' pipelines is imported: diffusers then runs as it does where they are not
installed. Import this module (not diffusers' pipelines) first; the host preloads it.
"""

from __future__ import annotations

import diffusers.utils.import_utils as _import_utils

_import_utils._bitsandbytes_available = False
_import_utils._peft_available = False

from diffusers import DiffusionPipeline  # noqa: E402
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion  # noqa: E402,F401

__all__ = ["DiffusionPipeline"]
