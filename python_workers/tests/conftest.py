"""Fixtures: one shared store per session, one long-lived worker process per kind and model.

Workers are session-scoped (not per module): starting one costs seconds of torch import
and model load on a 2-core machine, and the contract, conformance and per-kind tests can
all share the same processes. Tests that need to kill or starve a worker start a
dedicated one with worker_harness.start_worker.

Every worker fixture marked with worker_harness.prestart (here and in the test modules) is
started ahead of its first test by the session's Prestarter, in the order the tests run, so
the loads overlap the tests before them instead of each test waiting for its own.
"""

from __future__ import annotations

import os
import tempfile

# Before anything imports huggingface_hub: nothing here may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Tiny models are built once per session into a cache of its own (never the user's), which
# every worker the tests start inherits.
os.environ["PDS_DPO_TINY_CACHE"] = tempfile.mkdtemp(prefix="pdsdpo-pytest-tiny-")

import pytest  # noqa: E402

from worker_harness import (  # noqa: E402
    GENERATOR_MODEL,
    Prestarter,
    WorkerSpec,
    prestart,
    JUDGE_SCORER_MODEL,
    MUTE_RESPONDER_MODEL,
    RESPONDER_MODEL,
    REWARD_SCORER_MODEL,
    SCORER_MODEL,
)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    """The shared content-addressed store (tiny models: PDS_DPO_TINY_CACHE, above)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def prestarter(store_dir, log_dir):
    starter = Prestarter(store_dir, log_dir)
    yield starter
    starter.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "prestart(*specs): workers (WorkerSpec) the test takes from the prestarter itself")


def _planned_specs(items, basetemp) -> list[WorkerSpec]:
    """The workers of every prestart-marked fixture or test, in the order the items first use them."""
    specs, seen = [], set()
    for item in items:
        for mark in item.iter_markers("prestart"):
            specs += mark.args
        info = getattr(item, "_fixtureinfo", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        # A parameter that names a worker fixture (the conformance cases) uses that fixture.
        names = [*getattr(item, "fixturenames", ()), *(p.fixture for p in params.values() if isinstance(getattr(p, "fixture", None), str))]
        for name in names:
            defs = info.name2fixturedefs.get(name) if info else None
            if not defs:
                continue
            fixturedef = defs[-1]
            make = getattr(fixturedef.func, "prestart_specs", None)
            if make is None:
                continue
            param = params.get(name)
            # One instance per scope: the session's, a module's, or each test's.
            owner = {"session": None, "module": item.module.__name__}.get(fixturedef.scope, item.nodeid)
            key = (name, fixturedef.baseid, owner, repr(param))
            if key not in seen:
                seen.add(key)
                specs += make(param, basetemp)
    return specs


@pytest.fixture(scope="session", autouse=True)
def _prestart_plan(request, prestarter, tmp_path_factory):
    prestarter.plan(_planned_specs(request.session.items, tmp_path_factory.getbasetemp()))


def _serve(prestarter, spec: WorkerSpec):
    worker = prestarter.take(spec)
    yield worker
    # SIGTERM must end a healthy worker cleanly, with exit code 0.
    rc = worker.terminate()
    assert rc == 0, f"{spec.kind} worker exited with {rc} after SIGTERM\n{worker.log_tail()}"


def _session_worker(name: str, kind: str, model: dict):
    spec = WorkerSpec.of(kind, model)

    @pytest.fixture(scope="session", name=name)
    @prestart(lambda param, basetemp: [spec])
    def fixture(prestarter):
        yield from _serve(prestarter, spec)

    return fixture


generator_worker = _session_worker("generator_worker", "image-generator", GENERATOR_MODEL)
scorer_worker = _session_worker("scorer_worker", "image-scorer", SCORER_MODEL)
responder_worker = _session_worker("responder_worker", "responder", RESPONDER_MODEL)
mute_responder_worker = _session_worker("mute_responder_worker", "responder", MUTE_RESPONDER_MODEL)
reward_scorer_worker = _session_worker("reward_scorer_worker", "response-scorer", REWARD_SCORER_MODEL)
judge_scorer_worker = _session_worker("judge_scorer_worker", "response-scorer", JUDGE_SCORER_MODEL)
