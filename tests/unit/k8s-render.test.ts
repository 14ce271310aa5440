import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadExperiment, parseExperiment } from "../../src/config/load.js";
import { DEFAULT_RENDER, renderK8s } from "../../src/k8s/render.js";

function experiment(runtime: string): string {
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-k8s-"));
  writeFileSync(join(dir, "prompts.jsonl"), `${JSON.stringify({ id: "a-1", category: "art", t2i_prompt: "x", instruction: "q" })}\n`);
  const path = join(dir, "e.yaml");
  writeFileSync(
    path,
    `name: k8s-test
workers:
  sd: {kind: image-generator, model: {source: hf, id: org/sd, revision: abc}, replicas: 2, ${runtime}}
  pick: {kind: image-scorer, model: {source: hf, id: org/pick, revision: def}, runtime: {type: docker, image: reg/pds-dpo-image-scorer@sha256:bb}}
stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2}
`,
  );
  return path;
}

describe("k8s render", () => {
  it("a Deployment and a Service per replica, with GPUs, node selector, gRPC readiness, store, TLS and secrets", () => {
    const loaded = loadExperiment(experiment("runtime: {type: docker, image: reg/pds-dpo-image-generator@sha256:aa, gpus: [0], memory: 32g, shm_size: 8g}"));
    const { objects, experiment: exp } = renderK8s(loaded, { ...DEFAULT_RENDER, nodeSelector: { "nvidia.com/gpu.product": "H100" } });
    expect(objects.map((o) => `${o.kind}/${(o.metadata as { name: string }).name}`)).toEqual(["Deployment/sd-0", "Service/sd-0", "Deployment/sd-1", "Service/sd-1", "Deployment/pick-0", "Service/pick-0"]);
    const dep = objects[0] as { spec: { template: { spec: Record<string, unknown> } } };
    const pod = dep.spec.template.spec as { nodeSelector: Record<string, string>; containers: Record<string, unknown>[]; volumes: unknown[] };
    expect(pod.nodeSelector).toEqual({ "nvidia.com/gpu.product": "H100" });
    const c = pod.containers[0] as { image: string; args: string[]; readinessProbe: unknown; resources: { limits: Record<string, string> }; env: { name: string; valueFrom?: unknown }[] };
    expect(c.image).toBe("reg/pds-dpo-image-generator@sha256:aa");
    expect(c.args).toEqual(["--model", '{"source":"MODEL_SOURCE_HF","id":"org/sd","revision":"abc"}', "--store", "/store", "--device", "auto", "--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key"]);
    expect(c.readinessProbe).toMatchObject({ grpc: { port: 50051, service: "" } });
    expect(c.resources.limits).toEqual({ "nvidia.com/gpu": "1", memory: "32Gi" });
    expect(c.env.map((e) => e.name)).toEqual(["HF_TOKEN", "PDS_DPO_WORKER_TOKEN"]);
    expect(JSON.stringify(objects)).not.toMatch(/"value":"[^"]*token/i);
    expect(pod.volumes).toContainEqual({ name: "store", persistentVolumeClaim: { claimName: "pds-dpo-store" } });
    // The experiment now dials each replica as a remote endpoint, over TLS with the token.
    expect(exp.workers.sd!.runtime).toEqual({ type: "remote", endpoints: ["sd-0.pds-dpo.svc:50051", "sd-1.pds-dpo.svc:50051"], tls: { ca: "ca.crt" }, token_env: "PDS_DPO_WORKER_TOKEN", start_timeout_s: 600 });
    expect(exp.stages.images.prompts.startsWith("/")).toBe(true);
    // And it is a valid experiment.
    expect(parseExperiment(stringify(exp)).issues).toEqual([]);
  });

  it("requests as many GPUs as a worker's runtime.devices names (the scheduler picks which)", () => {
    const { objects } = renderK8s(loadExperiment(experiment("runtime: {type: docker, image: reg/x@sha256:aa, devices: [2, 3]}")));
    const pod = (objects[0] as { spec: { template: { spec: { containers: { resources: { limits: Record<string, string> } }[] } } } }).spec.template.spec;
    expect(pod.containers[0]!.resources.limits).toEqual({ "nvidia.com/gpu": "2" });
  });

  it("refuses a worker without an image", () => {
    expect(() => renderK8s(loadExperiment(experiment("runtime: {type: local}")))).toThrow("workers.sd: only workers with runtime.type docker (an image) can run on Kubernetes");
  });
});
