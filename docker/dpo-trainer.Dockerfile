# syntax=docker/dockerfile:1
# The dpo-trainer worker. Build the base first (docker/base.Dockerfile), then:
#   docker build -f docker/dpo-trainer.Dockerfile --build-arg BASE_IMAGE=pds-dpo-worker-base:<tag> -t pds-dpo-dpo-trainer:<tag> .
ARG BASE_IMAGE=pds-dpo-worker-base:latest
FROM ${BASE_IMAGE}

# The package's "deepspeed" and "wandb" extras: DeepSpeed, for ZeRO training on CUDA hosts, and
# Weights & Biases for train.report_to (TensorBoard is in the base already). A CPU build (the
# tests', `npm run images -- --base debian`) passes TRAINER_EXTRAS="" and adds nothing.
# The base's venv belongs to root; the worker runs as 10001 again below.
ARG TRAINER_EXTRAS=deepspeed,wandb
# Given to the base's build too (see docker/base.Dockerfile).
ARG PIP_FIND_LINKS
ARG PIP_CERT
USER 0
RUN if [ -n "${TRAINER_EXTRAS}" ]; then pip install --no-cache-dir "/src/python_workers[${TRAINER_EXTRAS}]"; fi
USER 10001

EXPOSE 50051
# Serving once the model is loaded: the worker's own gRPC health answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python", "-m", "pds_dpo_workers", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "pds_dpo_workers", "serve", "--kind", "dpo-trainer", "--host", "0.0.0.0", "--port", "50051", "--store", "/store"]
