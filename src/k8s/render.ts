// Pure: Kubernetes objects for an experiment's worker pools, and the experiment rewritten to
// use them as remote endpoints. Each replica is its own Deployment and Service, so the
// orchestrator dials every replica (gRPC keeps one connection per endpoint, which a single
// load-balanced Service would pin to one pod). Workers serve TLS and require the bearer
// token, both from Secrets made beforehand; readiness is the worker's own gRPC health.
import { UsageError } from "../errors.js";
import { resolvePath, type LoadedConfig } from "../config/load.js";
import type { ExperimentConfig } from "../config/schema.js";
import { CONTAINER_PORT, PASSED_SECRETS } from "../workers/docker-args.js";
import { modelSpecJson, toModelSpec } from "../workers/model-spec.js";

export interface RenderOptions {
  namespace: string;
  /** PersistentVolumeClaim holding the shared store. */
  storeClaim: string;
  /** Where the store is mounted in every pod (and where the orchestrator must see it too). */
  storePath: string;
  nodeSelector: Record<string, string>;
  /** Secret with HF_TOKEN and PDS_DPO_WORKER_TOKEN. */
  secret: string;
  /** Secret of type kubernetes.io/tls for the workers' serving certificate. */
  tlsSecret: string;
}

export const DEFAULT_RENDER: RenderOptions = {
  namespace: "pds-dpo",
  storeClaim: "pds-dpo-store",
  storePath: "/store",
  nodeSelector: {},
  secret: "pds-dpo-secrets",
  tlsSecret: "pds-dpo-worker-tls",
};

const SERVING_TOKEN = "PDS_DPO_WORKER_TOKEN";

export function renderK8s(loaded: LoadedConfig, o: RenderOptions = DEFAULT_RENDER): { objects: Record<string, unknown>[]; experiment: ExperimentConfig } {
  const objects: Record<string, unknown>[] = [];
  const workers: ExperimentConfig["workers"] = {};
  for (const [name, w] of Object.entries(loaded.config.workers)) {
    if (w.runtime.type !== "docker") throw new UsageError(`workers.${name}: only workers with runtime.type docker (an image) can run on Kubernetes`);
    const rt = w.runtime;
    const listed = rt.devices ?? rt.gpus;
    const gpus = listed === undefined ? 0 : listed === "all" ? 1 : listed.length;
    const endpoints: string[] = [];
    for (let i = 0; i < w.replicas; i++) {
      const id = `${name}-${i}`;
      const labels = { app: "pds-dpo-worker", "pds-dpo/experiment": loaded.config.name, "pds-dpo/worker": name, "pds-dpo/replica": String(i) };
      const limits: Record<string, string> = {};
      if (gpus) limits["nvidia.com/gpu"] = String(gpus);
      if (rt.cpus) limits.cpu = String(rt.cpus);
      if (rt.memory) limits.memory = rt.memory.toUpperCase().endsWith("B") ? rt.memory : `${rt.memory.replace(/[gG]$/, "Gi").replace(/[mM]$/, "Mi")}`;
      objects.push({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: id, namespace: o.namespace, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              ...(Object.keys(o.nodeSelector).length ? { nodeSelector: o.nodeSelector } : {}),
              securityContext: { runAsNonRoot: true, runAsUser: 10001 },
              containers: [
                {
                  name: "worker",
                  image: rt.image,
                  args: [
                    "--model", modelSpecJson(toModelSpec(w.model, loaded.baseDir)),
                    "--store", o.storePath,
                    "--device", rt.device,
                    "--tls-cert", "/tls/tls.crt",
                    "--tls-key", "/tls/tls.key",
                  ],
                  ports: [{ name: "grpc", containerPort: CONTAINER_PORT }],
                  env: [
                    ...[...PASSED_SECRETS, SERVING_TOKEN].map((k) => ({ name: k, valueFrom: { secretKeyRef: { name: o.secret, key: k, optional: k !== SERVING_TOKEN } } })),
                    ...Object.entries(rt.env).map(([k, v]) => ({ name: k, value: v })),
                  ],
                  readinessProbe: { grpc: { port: CONTAINER_PORT, service: "" }, periodSeconds: 10, failureThreshold: 3 },
                  startupProbe: { grpc: { port: CONTAINER_PORT, service: "" }, periodSeconds: 10, failureThreshold: Math.ceil(rt.start_timeout_s / 10) },
                  resources: Object.keys(limits).length ? { limits, requests: limits } : {},
                  volumeMounts: [
                    { name: "store", mountPath: o.storePath },
                    { name: "tls", mountPath: "/tls", readOnly: true },
                    ...(rt.shm_size ? [{ name: "shm", mountPath: "/dev/shm" }] : []),
                  ],
                },
              ],
              volumes: [
                { name: "store", persistentVolumeClaim: { claimName: o.storeClaim } },
                { name: "tls", secret: { secretName: o.tlsSecret } },
                ...(rt.shm_size ? [{ name: "shm", emptyDir: { medium: "Memory", sizeLimit: rt.shm_size.replace(/[gG]$/, "Gi") } }] : []),
              ],
            },
          },
        },
      });
      objects.push({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: id, namespace: o.namespace, labels },
        spec: { selector: labels, ports: [{ name: "grpc", port: CONTAINER_PORT, targetPort: "grpc", appProtocol: "grpc" }] },
      });
      endpoints.push(`${id}.${o.namespace}.svc:${CONTAINER_PORT}`);
    }
    const { runtime: _runtime, replicas: _replicas, ...rest } = w;
    workers[name] = { ...rest, replicas: 1, runtime: { type: "remote", endpoints, tls: { ca: "ca.crt" }, token_env: SERVING_TOKEN, start_timeout_s: rt.start_timeout_s } };
  }
  // The rendered file lives elsewhere: the prompts file is named by its absolute path.
  const stages = { ...loaded.config.stages, images: { ...loaded.config.stages.images, prompts: resolvePath(loaded.baseDir, loaded.config.stages.images.prompts) } };
  return { objects, experiment: { ...loaded.config, workers, stages } };
}
