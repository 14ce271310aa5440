"""Fixtures: one shared store per session, one long-lived worker process per kind and model.

Workers are session-scoped (not per module): starting one costs seconds of torch import
and model load on a 2-core machine, and the contract, conformance and per-kind tests can
all share the same processes. Tests that need to kill or starve a worker start a
dedicated one with worker_harness.start_worker.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: nothing here may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402

from worker_harness import (  # noqa: E402
    GENERATOR_MODEL,
    JUDGE_SCORER_MODEL,
    MUTE_RESPONDER_MODEL,
    RESPONDER_MODEL,
    REWARD_SCORER_MODEL,
    SCORER_MODEL,
    start_worker,
)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    """The shared content-addressed store; tiny models are built into it once per session."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


def _serve(kind, model, store_dir, log_dir):
    worker = start_worker(kind, model, store_dir, log_dir)
    yield worker
    # SIGTERM must end a healthy worker cleanly, with exit code 0.
    rc = worker.terminate()
    assert rc == 0, f"{kind} worker exited with {rc} after SIGTERM\n{worker.log_tail()}"


@pytest.fixture(scope="session")
def generator_worker(store_dir, log_dir):
    yield from _serve("image-generator", GENERATOR_MODEL, store_dir, log_dir)


@pytest.fixture(scope="session")
def scorer_worker(store_dir, log_dir):
    yield from _serve("image-scorer", SCORER_MODEL, store_dir, log_dir)


@pytest.fixture(scope="session")
def responder_worker(store_dir, log_dir):
    yield from _serve("responder", RESPONDER_MODEL, store_dir, log_dir)


@pytest.fixture(scope="session")
def mute_responder_worker(store_dir, log_dir):
    yield from _serve("responder", MUTE_RESPONDER_MODEL, store_dir, log_dir)


@pytest.fixture(scope="session")
def reward_scorer_worker(store_dir, log_dir):
    yield from _serve("response-scorer", REWARD_SCORER_MODEL, store_dir, log_dir)


@pytest.fixture(scope="session")
def judge_scorer_worker(store_dir, log_dir):
    yield from _serve("response-scorer", JUDGE_SCORER_MODEL, store_dir, log_dir)
