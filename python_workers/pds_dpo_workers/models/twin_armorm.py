"""Tiny twin of a custom-code reward model like ArmoRM (auto_map to a modeling file, output.score)."""

from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable[[str, int], None]] = {}
