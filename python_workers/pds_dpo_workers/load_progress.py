"""What a worker is doing while it loads, told as it happens.

The load (server._load_and_describe) runs under `reporting(sink)`; its steps call `step(...)`:
building a tiny model, hashing the model files, loading the model, and the libraries' own
progress bars (transformers' "Loading weights" N of M, through its public tqdm hook; diffusers'
"Loading pipeline components" where a loader asks for them with diffusers_bars). The server's
sink writes each as one "loading" line of its stdout protocol, which the orchestrator shows
with the time since the start; the trainer's sink, Progress messages of its Train call.
Outside `reporting` a step goes nowhere.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

Sink = Callable[[str, int, int], None]
# A counted step (N of M) is told at most this often, and always at its end.
MIN_INTERVAL_S = 0.5

_sink: Sink | None = None
_lock = threading.Lock()


def step(text: str, done: int = 0, total: int = 0) -> None:
    """Tell what the load is doing: a step's name, and how far it is when it is counted."""
    sink = _sink
    if sink is not None:
        with _lock:
            sink(text, done, total)


class Counter:
    """A counted step, told when it starts, then at most every MIN_INTERVAL_S, and at its end."""

    def __init__(self, text: str, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.text, self.total, self.done, self._clock = text, total, 0, clock
        self._told = clock()
        step(text, 0, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        if self.done >= self.total or now - self._told >= MIN_INTERVAL_S:
            self._told = now
            step(self.text, self.done, self.total)


class _RelayedBar:
    """A library's progress bar whose progress is also a load step (iteration and update())."""

    def __init__(self, bar, text: str, total: int) -> None:
        self._bar = bar
        self._counter = Counter(text, total)

    def __iter__(self):
        for item in self._bar:
            yield item
            self._counter.advance()

    def update(self, n: int = 1):
        self._counter.advance(n)
        return self._bar.update(n)

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._bar, name)


def _bar_hook(factory, args, kwargs):
    """transformers' tqdm hook: its bar, relayed when it says what it counts and how many."""
    bar = factory(*args, **kwargs)
    iterable = args[0] if args else kwargs.get("iterable")
    total = kwargs.get("total") or (len(iterable) if hasattr(iterable, "__len__") else 0)
    desc = str(kwargs.get("desc") or "").rstrip(".").strip()
    if not desc or not total:
        return bar
    return _RelayedBar(bar, desc[0].lower() + desc[1:], int(total))


@contextmanager
def diffusers_bars() -> Iterator[None]:
    """diffusers' own progress bars (pipeline components, checkpoint shards) as load steps in
    the block. diffusers has no hook like transformers': its logging module's tqdm, which its
    loaders look up at each call, is wrapped for the block."""
    from diffusers.utils import logging as diffusers_logging

    original = diffusers_logging.tqdm

    class Relayed:
        def __call__(self, *args, **kwargs):
            return _bar_hook(original, args, kwargs)

        def __getattr__(self, name):
            return getattr(original, name)

    diffusers_logging.tqdm = Relayed()
    try:
        yield
    finally:
        diffusers_logging.tqdm = original


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Steps go to `sink` for the block (the load thread's; transformers' bars included)."""
    global _sink
    from transformers.utils import logging as hf_logging

    previous_sink, _sink = _sink, sink
    previous_hook = hf_logging.set_tqdm_hook(_bar_hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous_hook)
        _sink = previous_sink
