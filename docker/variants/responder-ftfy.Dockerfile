# syntax=docker/dockerfile:1
# A second image-scorer image, with ftfy (the text cleaner of OpenAI CLIP's tokenizer) added:
# a worker that needs it names this image, the others keep the plain one (swapping an image per
# model). Built by `npm run images` on the kind's image:
#   docker build -f docker/variants/image-scorer-ftfy.Dockerfile --build-arg KIND_IMAGE=pds-dpo-image-scorer:<tag> -t pds-dpo-image-scorer-ftfy:<tag> <context>
ARG KIND_IMAGE=pds-dpo-image-scorer:latest
FROM ${KIND_IMAGE}

# Given to the base's build too (see docker/base.Dockerfile).
ARG PIP_FIND_LINKS
ARG PIP_CERT
USER 0
RUN pip install --no-cache-dir "ftfy==6.3.1"
USER 10001
