"""Tiny twins of SD3 (StableDiffusion3Pipeline) and SDXL (StableDiffusionXLPipeline)."""

from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable[[str, int], None]] = {}
