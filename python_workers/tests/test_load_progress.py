"""Load steps (load_progress): told to the sink only inside `reporting`, counted steps at most
every MIN_INTERVAL_S and at their end, and transformers' own progress bars relayed."""

from __future__ import annotations

from pds_dpo_workers import load_progress
from pds_dpo_workers.load_progress import Counter, reporting, step


def test_steps_reach_the_sink_only_while_reporting():
    told = []
    step("before")
    with reporting(lambda *s: told.append(s)):
        step("building the tiny model llava")
    step("after")
    assert told == [("building the tiny model llava", 0, 0)]


def test_a_counted_step_is_told_at_its_start_sparingly_and_at_its_end(monkeypatch):
    told = []
    now = [0.0]
    with reporting(lambda *s: told.append(s)):
        c = Counter("hashing the model files", 4, clock=lambda: now[0])
        c.advance()  # 0.0 s after the start: not yet
        now[0] = load_progress.MIN_INTERVAL_S
        c.advance()
        c.advance()
        c.advance()
    assert told == [("hashing the model files", 0, 4), ("hashing the model files", 2, 4), ("hashing the model files", 4, 4)]


def test_transformers_progress_bars_are_load_steps():
    from transformers.utils import logging as hf_logging

    told = []
    with reporting(lambda *s: told.append(s)):
        assert list(hf_logging.tqdm(range(3), desc="Loading weights")) == [0, 1, 2]
        with hf_logging.tqdm(total=2, desc="Writing model shards") as bar:
            bar.update(2)
        list(hf_logging.tqdm(range(2)))  # says nothing of what it counts: not a step
    assert told[0] == ("loading weights", 0, 3) and told[-2:] == [("writing model shards", 0, 2), ("writing model shards", 2, 2)]
    assert ("loading weights", 3, 3) in told
    # The hook is transformers' again once the load is over.
    assert hf_logging._tqdm_hook is None


def test_diffusers_progress_bars_are_load_steps_where_a_loader_asks():
    from diffusers.utils import logging as diffusers_logging

    original = diffusers_logging.tqdm
    told = []
    with reporting(lambda *s: told.append(s)):
        list(diffusers_logging.tqdm({"unet": 1, "vae": 2}.items(), desc="Loading pipeline components..."))
        with load_progress.diffusers_bars():
            list(diffusers_logging.tqdm({"unet": 1, "vae": 2}.items(), desc="Loading pipeline components..."))
    assert told == [("loading pipeline components", 0, 2), ("loading pipeline components", 2, 2)]
    assert diffusers_logging.tqdm is original

