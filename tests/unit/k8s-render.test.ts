// `k8s render`: the objects for any experiment (local or docker workers), their shape, and the
// experiment the orchestrator runs in the cluster. Strict schema validation of the rendered
// files is in tests/integration/k8s-validate.test.ts.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadExperiment, parseExperiment } from "../../src/config/load.js";
import { DEFAULT_RENDER, renderK8s } from "../../src/k8s/render.js";

function experiment(runtime: string, extra = ""): string {
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-k8s-"));
  writeFileSync(join(dir, "prompts.jsonl"), `${JSON.stringify({ id: "a-1", category: "art", t2i_prompt: "x", instruction: "q" })}\n`);
  const path = join(dir, "e.yaml");
  writeFileSync(
    path,
    `name: k8s-test
workers:
  sd: {kind: image-generator, model: {source: hf, id: org/sd, revision: abc}, replicas: 2, ${runtime}}
  pick: {kind: image-scorer, model: {source: hf, id: org/pick, revision: def}, runtime: {type: local, device: cpu}}
${extra}stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2}
`,
  );
  return path;
}

type Obj = { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown>; data?: Record<string, string> };
type Container = { image: string; args: string[]; env: { name: string; value?: string; valueFrom?: unknown }[]; readinessProbe: { exec: { command: string[] } }; resources: { limits?: Record<string, string> }; securityContext: Record<string, unknown>; volumeMounts: { name: string; mountPath: string }[] };
const podOf = (o: Obj) => (o.spec.template as { spec: { containers: Container[]; securityContext: Record<string, unknown>; volumes: Record<string, unknown>[] } }).spec;

describe("k8s render", () => {
  it("any experiment: a store claim, a Deployment and headless Service per worker, the experiment in a ConfigMap, a Job that runs it", () => {
    const loaded = loadExperiment(experiment("runtime: {type: docker, image: reg/pds-dpo-image-generator@sha256:aa, devices: [0, 1], memory: 32g, shm_size: 8g}"));
    const { objects, experiment: exp } = renderK8s(loaded, { ...DEFAULT_RENDER, registry: "reg.example", tag: "1.0", storageClass: "nfs", queue: "gpu", nodeSelector: { "nvidia.com/gpu.product": "H100" } }) as unknown as { objects: Obj[]; experiment: ReturnType<typeof renderK8s>["experiment"] };
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "PersistentVolumeClaim/pds-dpo-store",
      "Deployment/sd", "Service/sd",
      "Deployment/pick", "Service/pick",
      "ConfigMap/k8s-test-experiment",
      "Job/k8s-test-run",
    ]);
    expect(objects[0]!.spec).toEqual({ accessModes: ["ReadWriteMany"], resources: { requests: { storage: "500Gi" } }, storageClassName: "nfs" });

    // The GPU worker: its image, two replicas, GPUs from its devices, a TLS exec probe, hardened.
    const sd = objects[1]!;
    expect(sd.spec.replicas).toBe(2);
    const pod = podOf(sd);
    const c = pod.containers[0]!;
    expect(c.image).toBe("reg/pds-dpo-image-generator@sha256:aa");
    expect(c.args).toEqual(["--model", '{"source":"MODEL_SOURCE_HF","id":"org/sd","revision":"abc"}', "--store", "/store", "--device", "auto", "--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key", "--allow-root", "/config", "--expect-gpus", "2"]);
    expect(c.resources.limits).toEqual({ "nvidia.com/gpu": "2", memory: "32Gi" });
    expect(c.readinessProbe.exec.command).toEqual(["python", "-m", "pds_dpo_workers", "health", "--address", "127.0.0.1:50051", "--tls-ca", "/tls/ca.crt", "--tls-server-name", "sd.pds-dpo.svc.cluster.local", "--timeout", "5"]);
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(c.volumeMounts.map((m) => m.mountPath)).toEqual(["/store", "/config", "/tls", "/tmp", "/dev/shm"]);
    expect(sd.metadata.labels).toMatchObject({ "kueue.x-k8s.io/queue-name": "gpu" });
    // Secrets by reference, never inlined.
    expect(c.env.filter((e) => e.valueFrom).map((e) => e.name)).toEqual(["HF_TOKEN", "WANDB_API_KEY", "PDS_DPO_WORKER_TOKEN"]);
    expect(JSON.stringify(objects)).not.toMatch(/"value":"[^"]*(token|hf_)/i);
    expect(objects[2]!.spec).toMatchObject({ clusterIP: "None", ports: [{ port: 50051 }] });

    // A local worker gets its kind's image from the registry; a CPU worker no GPU and no queue.
    const pick = podOf(objects[3]!).containers[0]!;
    expect(pick.image).toBe("reg.example/pds-dpo-image-scorer:1.0");
    expect(pick.resources).toEqual({});
    expect(objects[3]!.metadata.labels).not.toHaveProperty("kueue.x-k8s.io/queue-name");

    // The Job runs the experiment from the ConfigMap, with a failure policy that ignores preemption.
    const job = objects[6]!;
    expect(podOf(job).containers[0]!.args).toEqual(["run", "/config/experiment.yaml", "--store", "/store", "--json"]);
    expect(podOf(job).containers[0]!.image).toBe("reg.example/pds-dpo-orchestrator:1.0");
    expect(job.spec.podFailurePolicy).toMatchObject({ rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget" }] }, { action: "FailJob" }] });

    // The experiment in the cluster: each worker is its headless Service, its prompts beside it; and it validates.
    const cm = objects[5]!;
    expect(Object.keys(cm.data!)).toEqual(["experiment.yaml", "prompts.jsonl"]);
    const inCluster = parse(cm.data!["experiment.yaml"]!) as typeof exp;
    expect(inCluster.workers.sd!.runtime).toEqual({ type: "remote", service: "sd.pds-dpo.svc.cluster.local:50051", endpoints: [], tls: { ca: "/tls/ca.crt" }, token_env: "PDS_DPO_WORKER_TOKEN", start_timeout_s: 600 });
    expect(inCluster.workers.sd!.replicas).toBe(2);
    expect(inCluster.stages.images!.prompts).toBe("prompts.jsonl");
    expect(parseExperiment(cm.data!["experiment.yaml"]!).issues).toEqual([]);
  });

  it("carries the DeepSpeed config; refuses a model directory that is not on the store volume", () => {
    const path = experiment(
      "runtime: {type: local, device: cuda}",
      "  dpo: {kind: dpo-trainer, model: {source: hf, id: org/llava, revision: abc}, runtime: {type: local, device: cuda}}\n  a: {kind: responder, model: {source: hf, id: org/llava, revision: abc}}\n  rm: {kind: response-scorer, model: {source: hf, id: org/rm, revision: abc}}\n",
    );
    writeFileSync(join(dirname(path), "zero2.json"), JSON.stringify({ zero_optimization: { stage: 2 } }));
    writeFileSync(path, `${readFileSync(path, "utf8")}  responses: {responders: [a], scorer: rm}\n  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}, gpus: 2, deepspeed: zero2.json}\n`);
    const { objects } = renderK8s(loadExperiment(path)) as unknown as { objects: Obj[] };
    const cm = objects.find((o) => o.kind === "ConfigMap")!;
    expect(JSON.parse(cm.data!["deepspeed.json"]!)).toEqual({ zero_optimization: { stage: 2 } });
    expect((parse(cm.data!["experiment.yaml"]!) as { stages: { train: { deepspeed: string } } }).stages.train.deepspeed).toBe("deepspeed.json");
    // The trainer's two processes: two GPUs, and the packages it needs checked by the worker.
    const dpo = podOf(objects.find((o) => o.kind === "Deployment" && o.metadata.name === "dpo")!).containers[0]!;
    expect(dpo.resources.limits).toEqual({ "nvidia.com/gpu": "2" });
    expect(dpo.args.slice(-6)).toEqual(["--expect-gpus", "2", "--require", "accelerate", "--require", "deepspeed"]);

    const local = experiment("runtime: {type: local, device: cuda}");
    mkdirSync(join(dirname(local), "models", "sd"), { recursive: true });
    writeFileSync(local, readFileSync(local, "utf8").replace("model: {source: hf, id: org/sd, revision: abc}", "model: {source: path, path: models/sd}"));
    expect(() => renderK8s(loadExperiment(local))).toThrow(/^workers\.sd\.model\.path: a model directory must be on the store volume in the cluster; copy it under \/store\/ and name it by that absolute path$/);
  });
});
