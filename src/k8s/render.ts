// The Kubernetes objects that run an experiment in a cluster, and the experiment as the
// orchestrator sees it there (the files it carries into the ConfigMap are read; nothing is written).
//
// - a ReadWriteMany PersistentVolumeClaim for the store, mounted at the same path by every pod
//   (workers write their outputs into it);
// - per worker, a Deployment of its replicas and a headless Service: the orchestrator resolves
//   the Service's name to its pods' addresses and balances calls across them itself (gRPC keeps
//   one connection per address, which a load-balanced Service would pin to one pod); a pod
//   that goes away is a replica that died: its calls are requeued, restarting it is the
//   Deployment's job;
// - a ConfigMap with the experiment (workers rewritten as remote Services), its prompts and
//   DeepSpeed config, and a Job that runs `orchestrate run` on it.
// Workers serve TLS and require the bearer token, both from Secrets made beforehand (never
// inlined); readiness is the worker's own health command over TLS, as an exec probe (the
// built-in gRPC probe does not speak TLS). Every pod runs non-root, without privilege
// escalation or capabilities, on a read-only root with writable scratch volumes.
import { readFileSync } from "node:fs";
import { isAbsolute, normalize } from "node:path";
import { stringify } from "yaml";
import { UsageError } from "../errors.js";
import { resolvePath, type LoadedConfig } from "../config/load.js";
import type { ExperimentConfig, WorkerConfig } from "../config/schema.js";
import { CONTAINER_PORT, PASSED_SECRETS } from "../workers/docker-args.js";
import { modelSpecJson, toModelSpec } from "../workers/model-spec.js";
import { expectedGpus, requiredPackages } from "../workers/requirements.js";

export interface RenderOptions {
  namespace: string;
  /** PersistentVolumeClaim holding the shared store (ReadWriteMany). */
  storeClaim: string;
  storeSize: string;
  /** Storage class of the claim (one that offers ReadWriteMany); unset: the cluster's default. */
  storageClass?: string;
  /** Where the store is mounted in every pod. */
  storePath: string;
  nodeSelector: Record<string, string>;
  /** Secret with HF_TOKEN and PDS_DPO_WORKER_TOKEN. */
  secret: string;
  /** Secret with the workers' serving certificate (tls.crt, tls.key) and its CA (ca.crt). */
  tlsSecret: string;
  /** Registry and tag of the images a worker gets when its config names none (`npm run images`). */
  registry: string;
  tag: string;
  /** Kueue LocalQueue for the Job and the GPU workers; unset: no queue label. */
  queue?: string;
}

export const DEFAULT_RENDER: RenderOptions = {
  namespace: "pds-dpo",
  storeClaim: "pds-dpo-store",
  storeSize: "500Gi",
  storePath: "/store",
  nodeSelector: {},
  secret: "pds-dpo-secrets",
  tlsSecret: "pds-dpo-worker-tls",
  registry: "pds-dpo",
  tag: "latest",
};

const SERVING_TOKEN = "PDS_DPO_WORKER_TOKEN";
const USER = 10001;
const CONFIG_DIR = "/config";

export const imageName = (o: RenderOptions, name: string) => `${o.registry.replace(/\/$/, "")}/pds-dpo-${name}:${o.tag}`;

/** Non-root, no privilege escalation, no capabilities, read-only root. */
const containerSecurity = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } };
const podSecurity = { runAsNonRoot: true, runAsUser: USER, runAsGroup: USER, fsGroup: USER, seccompProfile: { type: "RuntimeDefault" } };

const k8sSize = (s: string) => (/[bB]$/.test(s) ? s : s.replace(/[gG]$/, "Gi").replace(/[mM]$/, "Mi").replace(/[kK]$/, "Ki"));

function workerImage(w: WorkerConfig, o: RenderOptions): string {
  return w.runtime.type === "docker" ? w.runtime.image : imageName(o, w.kind);
}

export function serviceHost(worker: string, o: RenderOptions): string {
  return `${worker}.${o.namespace}.svc.cluster.local`;
}

export function renderK8s(loaded: LoadedConfig, o: RenderOptions = DEFAULT_RENDER): { objects: Record<string, unknown>[]; experiment: ExperimentConfig } {
  const { config } = loaded;
  const objects: Record<string, unknown>[] = [];
  const base = { "app.kubernetes.io/part-of": "pds-dpo", "pds-dpo/experiment": config.name };
  const queue = o.queue ? { "kueue.x-k8s.io/queue-name": o.queue } : {};
  const nodeSelector = Object.keys(o.nodeSelector).length ? { nodeSelector: o.nodeSelector } : {};
  const secretEnv = [...PASSED_SECRETS, SERVING_TOKEN].map((k) => ({ name: k, valueFrom: { secretKeyRef: { name: o.secret, key: k, optional: k !== SERVING_TOKEN } } }));
  // Caches on the shared store (downloads once for every pod); other scratch in /tmp.
  const cacheEnv = [
    { name: "HF_HOME", value: `${o.storePath}/hf` },
    { name: "PDS_DPO_TINY_CACHE", value: `${o.storePath}/models/tiny` },
    { name: "XDG_CACHE_HOME", value: "/tmp/cache" },
    { name: "HOME", value: "/tmp" },
  ];
  const storeMount = { name: "store", mountPath: o.storePath };
  const storeVolume = { name: "store", persistentVolumeClaim: { claimName: o.storeClaim } };
  const configMapName = `${config.name.toLowerCase().replace(/[^a-z0-9-]/g, "-")}-experiment`;

  objects.push({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: o.storeClaim, namespace: o.namespace, labels: base },
    spec: { accessModes: ["ReadWriteMany"], resources: { requests: { storage: o.storeSize } }, ...(o.storageClass ? { storageClassName: o.storageClass } : {}) },
  });

  const workers: ExperimentConfig["workers"] = {};
  for (const [name, w] of Object.entries(config.workers)) {
    if (w.runtime.type === "remote") {
      // Already served elsewhere: the orchestrator in the cluster dials it as configured.
      workers[name] = w;
      continue;
    }
    const rt = w.runtime;
    const labels = { ...base, "app.kubernetes.io/name": "pds-dpo-worker", "pds-dpo/worker": name };
    const gpus = expectedGpus(config, name) || (rt.type === "docker" && rt.gpus === "all" ? 1 : 0);
    const limits: Record<string, string> = {};
    if (gpus) limits["nvidia.com/gpu"] = String(gpus);
    if (rt.type === "docker" && rt.cpus) limits.cpu = String(rt.cpus);
    if (rt.type === "docker" && rt.memory) limits.memory = k8sSize(rt.memory);
    const host = serviceHost(name, o);
    // The exec probe: the worker's own health check over TLS, against the Service's name.
    const probe = ["python", "-m", "pds_dpo_workers", "health", "--address", `127.0.0.1:${CONTAINER_PORT}`, "--tls-ca", "/tls/ca.crt", "--tls-server-name", host, "--timeout", "5"];
    const shm = rt.type === "docker" ? rt.shm_size : undefined;
    objects.push({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: o.namespace, labels: { ...labels, ...(gpus ? queue : {}) } },
      spec: {
        replicas: w.replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels: { ...labels, ...(gpus ? queue : {}) } },
          spec: {
            ...nodeSelector,
            securityContext: podSecurity,
            automountServiceAccountToken: false,
            containers: [
              {
                name: "worker",
                image: workerImage(w, o),
                // The image's entrypoint serves the kind on 0.0.0.0:50051; these complete it.
                args: [
                  "--model", modelSpecJson(toModelSpec(w.model, loaded.baseDir)),
                  "--store", o.storePath,
                  "--device", rt.device,
                  "--tls-cert", "/tls/tls.crt",
                  "--tls-key", "/tls/tls.key",
                  // The experiment's files (the trainer's DeepSpeed config) as the Job names them.
                  "--allow-root", CONFIG_DIR,
                  ...(gpus ? ["--expect-gpus", String(gpus)] : []),
                  ...requiredPackages(config, name).flatMap((p) => ["--require", p]),
                ],
                ports: [{ name: "grpc", containerPort: CONTAINER_PORT }],
                env: [...secretEnv, ...cacheEnv, ...Object.entries(rt.env).map(([k, v]) => ({ name: k, value: v }))],
                startupProbe: { exec: { command: probe }, periodSeconds: 10, timeoutSeconds: 8, failureThreshold: Math.ceil(rt.start_timeout_s / 10) },
                readinessProbe: { exec: { command: probe }, periodSeconds: 10, timeoutSeconds: 8, failureThreshold: 3 },
                resources: Object.keys(limits).length ? { limits, requests: limits } : {},
                securityContext: containerSecurity,
                volumeMounts: [storeMount, { name: "config", mountPath: CONFIG_DIR, readOnly: true }, { name: "tls", mountPath: "/tls", readOnly: true }, { name: "tmp", mountPath: "/tmp" }, ...(shm ? [{ name: "shm", mountPath: "/dev/shm" }] : [])],
              },
            ],
            volumes: [
              storeVolume,
              { name: "config", configMap: { name: configMapName } },
              { name: "tls", secret: { secretName: o.tlsSecret } },
              { name: "tmp", emptyDir: {} },
              ...(shm ? [{ name: "shm", emptyDir: { medium: "Memory", sizeLimit: k8sSize(shm) } }] : []),
            ],
          },
        },
      },
    });
    objects.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: o.namespace, labels },
      // Headless: DNS answers every ready pod's address; the orchestrator dials each.
      spec: { clusterIP: "None", selector: labels, ports: [{ name: "grpc", port: CONTAINER_PORT, targetPort: "grpc", appProtocol: "grpc" }] },
    });
    const { runtime: _runtime, ...rest } = w;
    workers[name] = {
      ...rest,
      runtime: { type: "remote", service: `${host}:${CONTAINER_PORT}`, endpoints: [], tls: { ca: "/tls/ca.crt" }, token_env: SERVING_TOKEN, start_timeout_s: rt.start_timeout_s },
    };
  }

  // The experiment in the ConfigMap: its files beside it, by their base names.
  const files: Record<string, string> = {};
  const stages = structuredClone(config.stages);
  const carry = (file: string, as: string) => {
    files[as] = readFileSync(resolvePath(loaded.baseDir, file), "utf8");
    return as;
  };
  if (stages.images) stages.images.prompts = carry(stages.images.prompts, "prompts.jsonl");
  if (stages.train?.dataset && !stages.train.dataset.startsWith(`${o.storePath}/`)) {
    throw new UsageError(`stages.train.dataset: ${stages.train.dataset}: a dataset of your own must be on the store volume in the cluster, with its images; copy them under ${o.storePath}/ and name the file by that absolute path`);
  }
  if (stages.train?.deepspeed) stages.train.deepspeed = carry(stages.train.deepspeed, "deepspeed.json");
  // Benchmark files stay where they are on the store volume: an absolute path must be there; a
  // path relative to the config is looked up under the store (benchmarks/pope/... -> /store/benchmarks/pope/...).
  const onStore = (p: string, i: number) => {
    if (!isAbsolute(p) && !normalize(p).startsWith("..")) return `${o.storePath}/${normalize(p)}`;
    if (!p.startsWith(`${o.storePath}/`)) throw new UsageError(`stages.evaluate.benchmarks[${i}]: ${p}: benchmark files must be on the store volume in the cluster; copy them under ${o.storePath}/ and name them by that absolute path (or relative to it)`);
    return p;
  };
  for (const [i, b] of (stages.evaluate?.benchmarks ?? []).entries()) {
    if (b.path) b.path = onStore(b.path, i);
    if (b.image_root) b.image_root = onStore(b.image_root, i);
    if (b.splits) b.splits = Object.fromEntries(Object.entries(b.splits).map(([k, v]) => [k, onStore(v!, i)]));
    if (b.references) b.references = Object.fromEntries(Object.entries(b.references).map(([k, v]) => [k, onStore(v, i)]));
  }
  for (const [name, w] of Object.entries(config.workers)) {
    if (w.model.source === "path" && !resolvePath(loaded.baseDir, w.model.path!).startsWith(`${o.storePath}/`)) {
      throw new UsageError(`workers.${name}.model.path: a model directory must be on the store volume in the cluster; copy it under ${o.storePath}/ and name it by that absolute path`);
    }
  }
  const experiment: ExperimentConfig = { ...config, workers, stages };
  const configMap = configMapName;
  const yaml = `# Rendered by \`orchestrate k8s render\` from ${loaded.file}: the workers as the cluster's Services.\n${stringify(experiment, { lineWidth: 0, aliasDuplicateObjects: false })}`;
  objects.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: configMap, namespace: o.namespace, labels: base }, data: { "experiment.yaml": yaml, ...files } });

  const jobLabels = { ...base, "app.kubernetes.io/name": "pds-dpo-orchestrator", ...queue };
  objects.push({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: `${configMap.replace(/-experiment$/, "")}-run`, namespace: o.namespace, labels: jobLabels },
    spec: {
      backoffLimit: 3,
      // A pod evicted or preempted does not count against the retries; a bad config (exit 2) fails the Job at once.
      podFailurePolicy: {
        rules: [
          { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
          { action: "FailJob", onExitCodes: { containerName: "orchestrator", operator: "In", values: [2] } },
        ],
      },
      template: {
        metadata: { labels: jobLabels },
        spec: {
          restartPolicy: "Never",
          securityContext: podSecurity,
          automountServiceAccountToken: false,
          containers: [
            {
              name: "orchestrator",
              image: imageName(o, "orchestrator"),
              // A retried pod resumes nothing by itself: the run id is fixed, so `resume` can finish it by hand.
              args: ["run", `${CONFIG_DIR}/experiment.yaml`, "--store", o.storePath, "--json"],
              env: [...secretEnv.filter((e) => e.name === SERVING_TOKEN), { name: "HOME", value: "/tmp" }],
              securityContext: containerSecurity,
              resources: { requests: { cpu: "1", memory: "2Gi" }, limits: { memory: "8Gi" } },
              volumeMounts: [storeMount, { name: "config", mountPath: CONFIG_DIR, readOnly: true }, { name: "tls", mountPath: "/tls", readOnly: true }, { name: "tmp", mountPath: "/tmp" }],
            },
          ],
          volumes: [
            storeVolume,
            { name: "config", configMap: { name: configMap } },
            { name: "tls", secret: { secretName: o.tlsSecret, items: [{ key: "ca.crt", path: "ca.crt" }] } },
            { name: "tmp", emptyDir: {} },
          ],
        },
      },
    },
  });
  return { objects, experiment };
}
