# syntax=docker/dockerfile:1
# Shared base of every worker image: Python, the pinned ML stack and the pds_dpo_workers
# package. The per-kind images add only their entrypoint (and the trainer its extra), so the
# stack's layers are stored once. Built by `npm run images` (scripts/build-images.mjs), whose
# build context holds python_workers/ only. By hand, from a context with python_workers/:
#   docker build -f docker/base.Dockerfile -t pds-dpo-worker-base:<tag> <context>
# BASE_IMAGE: the CUDA runtime for GPU hosts (default); any Debian/Ubuntu with python3 works
# (the tests build on a Debian bookworm root made by debootstrap: `npm run images -- --base debian`).
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
# Only where given (pip reads them from the environment): local wheel directories and a CA
# bundle, each mounted read-only into the build (--volume), e.g. a CPU torch wheel and the CA of
# a TLS-inspecting proxy in front of the package index.
ARG PIP_FIND_LINKS
ARG PIP_CERT
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# python3 and venv from the distribution unless the base has them already (the Debian one does).
RUN if ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv /opt/venv \
 && pip install "torch==${TORCH_VERSION}"

# The pinned dependencies (and the quant extra: bitsandbytes, which responders, scorers and the
# evaluator load 4-bit/8-bit models with) before the package's code, so a code change reuses them.
COPY python_workers/pyproject.toml /src/python_workers/pyproject.toml
RUN python3 -c "import tomllib; p = tomllib.load(open('/src/python_workers/pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['quant']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY python_workers /src/python_workers
RUN pip install --no-deps /src/python_workers \
 && useradd --create-home --uid 10001 worker

# The runtime runs containers as the orchestrator's own uid:gid (so both sides can read and
# write the shared store); 10001 is the default for a bare `docker run`.
USER 10001
WORKDIR /home/worker
