# syntax=docker/dockerfile:1
# A second responder image: the responder's with one more package (ftfy, a text cleaner some
# tokenizers use). One experiment can run two images of a kind, each worker naming its own
# (configs/tiny-containers.yaml: llava-a on the plain image, llava-b on this one); the manifest
# records each one's digest. Built by `npm run images` on the kind's image:
#   docker build -f docker/variants/responder-ftfy.Dockerfile --build-arg KIND_IMAGE=pds-dpo-responder:<tag> -t pds-dpo-responder-ftfy:<tag> <context>
ARG KIND_IMAGE=pds-dpo-responder:latest
FROM ${KIND_IMAGE}

# Given to the base's build too (see docker/base.Dockerfile).
ARG PIP_FIND_LINKS
ARG PIP_CERT
USER 0
RUN pip install --no-cache-dir "ftfy==6.3.1"
USER 10001
