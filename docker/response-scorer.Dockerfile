# syntax=docker/dockerfile:1
# The response-scorer worker. Build the base first (docker/base.Dockerfile), then:
#   docker build -f docker/response-scorer.Dockerfile --build-arg BASE_IMAGE=pds-dpo-worker-base:<tag> -t pds-dpo-response-scorer:<tag> .
ARG BASE_IMAGE=pds-dpo-worker-base:latest
FROM ${BASE_IMAGE}

# bitsandbytes (4-bit/8-bit loads) is in the base already.

EXPOSE 50051
# Serving once the model is loaded: the worker's own gRPC health answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python", "-m", "pds_dpo_workers", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "pds_dpo_workers", "serve", "--kind", "response-scorer", "--host", "0.0.0.0", "--port", "50051", "--store", "/store"]
