# syntax=docker/dockerfile:1
# Shared base of every worker image: CUDA runtime, Python, the pinned ML stack and the
# pds_dpo_workers package. Build from the repository root:
#   docker build -f docker/base.Dockerfile -t pds-dpo-worker-base:<tag> .
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && pip install "torch==${TORCH_VERSION}"

COPY python_workers /src/python_workers
RUN pip install /src/python_workers \
 && useradd --create-home --uid 10001 worker

USER 10001
WORKDIR /home/worker
