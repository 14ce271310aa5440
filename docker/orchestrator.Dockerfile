# syntax=docker/dockerfile:1
# The control plane, for `orchestrate run` inside a cluster (the Job that `k8s render` writes).
# It needs no GPU and no Python: the workers are the cluster's Services. From the repository root:
#   docker build -f docker/orchestrator.Dockerfile -t pds-dpo-orchestrator:<tag> .
ARG NODE_IMAGE=node:20.19-bookworm-slim
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# better-sqlite3 (the journal) builds or fetches its native binding here.
RUN npm ci
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The node image's unprivileged user; the Job runs it with a read-only root and /tmp writable.
USER 1000
ENTRYPOINT ["node", "/app/bin/orchestrate.js"]
