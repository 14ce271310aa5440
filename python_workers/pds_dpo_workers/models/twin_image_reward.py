"""Tiny twin of THUDM's ImageReward checkpoint (ImageReward.pt + med_config.json)."""

from __future__ import annotations

from typing import Callable

BUILDERS: dict[str, Callable[[str, int], None]] = {}
