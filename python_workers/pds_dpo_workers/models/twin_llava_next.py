"""Tiny twin of LLaVA-1.6 (LlavaNextForConditionalGeneration with its anyres processor)."""

from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable[[str, int], None]] = {}
