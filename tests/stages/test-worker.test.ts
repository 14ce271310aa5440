// The test worker itself, over real gRPC with the generated clients: it speaks the contract the
// stage tests rely on (health, Describe, streamed results with progress, per-item errors) and
// writes the store layout the control plane reads (src/store/cas.ts verifies and
// src/store/png.ts decodes what it writes).
import { credentials, Metadata, status, type ClientReadableStream } from "@grpc/grpc-js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../src/gen/grpc/health/v1/health.js";
import { OutputMode, WorkerKind, type WorkerInfo } from "../../src/gen/pdsdpo/v1/common.js";
import { ImageGeneratorServiceClient, type GenerateResponse } from "../../src/gen/pdsdpo/v1/image_generator.js";
import { WorkerServiceClient } from "../../src/gen/pdsdpo/v1/worker.js";
import { ContentStore } from "../../src/store/cas.js";
import { decodePng } from "../../src/store/png.js";
import { tempDir } from "../helpers.js";
import { TestWorker } from "../support/test-worker.js";

async function all<T>(call: ClientReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of call) out.push(m as T);
  return out;
}

describe("the test worker", { timeout: 30_000 }, () => {
  const store = tempDir("pdsdpo-tw-");
  let worker: TestWorker;
  let generator: InstanceType<typeof ImageGeneratorServiceClient>;
  beforeAll(async () => {
    worker = await new TestWorker({ kind: "image-generator", model: { source: "tiny", name: "sd", seed: 3 }, store }).start();
    generator = new ImageGeneratorServiceClient(worker.address, credentials.createInsecure());
  });
  afterAll(async () => {
    generator.close();
    await worker.stop();
  });
  const item = (id: string, o: { prompt?: string; width?: number } = {}) => ({ id, prompt: o.prompt ?? "a red cup", negativePrompt: "", guidanceScale: 5, steps: 2, width: o.width ?? 32, height: 32, seed: 42, generatorDevice: "" });

  it("serves health and a Describe that echoes its model with a weights hash", async () => {
    const health = new HealthClient(worker.address, credentials.createInsecure());
    const describe = new WorkerServiceClient(worker.address, credentials.createInsecure());
    try {
      const check = (service: string) => new Promise<{ status?: HealthCheckResponse_ServingStatus; code?: number }>((resolve) => health.check({ service }, (err, res) => resolve(err ? { code: err.code } : { status: res.status })));
      expect(await check("")).toEqual({ status: HealthCheckResponse_ServingStatus.SERVING });
      expect(await check("pdsdpo.v1.ImageGeneratorService")).toEqual({ status: HealthCheckResponse_ServingStatus.SERVING });
      expect(await check("no.such.Service")).toEqual({ code: status.NOT_FOUND });
      const info = await new Promise<WorkerInfo | undefined>((resolve, reject) => describe.describe({}, (err, res) => (err ? reject(err) : resolve(res.info))));
      expect(info).toMatchObject({ kind: WorkerKind.WORKER_KIND_IMAGE_GENERATOR, protocolVersion: "1", model: { spec: { id: "sd", seed: 3 }, resolvedRevision: "tiny-v1", weightsSha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    } finally {
      health.close();
      describe.close();
    }
  });

  it("writes PNGs into the content-addressed store that the control plane verifies and decodes; same request, same bytes", async () => {
    const run = () => all<GenerateResponse>(generator.generate({ items: [item("i0"), item("i1", { prompt: "a blue car" })], output: OutputMode.OUTPUT_MODE_STORE, maxBatchSize: 2 }, new Metadata()));
    const first = await run();
    const images = first.flatMap((m) => (m.event?.$case === "image" ? [m.event.value] : []));
    expect(images.map((i) => i.id)).toEqual(["i0", "i1"]);
    expect(first.filter((m) => m.event?.$case === "progress").at(-1)!.event!.value).toEqual({ done: 2, total: 2, unit: "images" });
    const cas = new ContentStore(store);
    for (const img of images) {
      const kind = img.image!.kind!;
      const ref = kind.$case === "ref" ? kind.value : undefined;
      expect(ref).toMatchObject({ uri: `cas://sha256/${ref!.sha256}`, mediaType: "image/png" });
      expect(cas.pathOf(ref!.sha256)).toBe(join(store, "cas", "sha256", ref!.sha256.slice(0, 2), ref!.sha256));
      expect(decodePng(cas.verify(ref!))).toMatchObject({ width: 32, height: 32, channels: 3 });
    }
    expect(images[0]!.image).not.toEqual(images[1]!.image);
    const again = (await run()).flatMap((m) => (m.event?.$case === "image" ? [m.event.value.image] : []));
    expect(again).toEqual(images.map((i) => i.image));
  });

  it("fails a bad item alone, with a deterministic error; counts calls; fails a call with UNAVAILABLE mid-stream when told", async () => {
    const calls = worker.modelCalls;
    const msgs = await all<GenerateResponse>(generator.generate({ items: [item("ok"), item("bad", { width: 30 })], output: OutputMode.OUTPUT_MODE_INLINE, maxBatchSize: 2 }, new Metadata()));
    const byId = Object.fromEntries(msgs.flatMap((m) => (m.event?.$case === "image" ? [[m.event.value.id, m.event.value]] : [])));
    expect(byId.ok!.image!.kind!.$case).toBe("inline");
    expect(byId.bad!.error).toEqual({ code: "invalid_input", message: "size 30x32 must be positive multiples of 8", deterministic: true });
    expect(worker.modelCalls).toBe(calls + 1);
    expect(worker.calls.at(-1)).toMatchObject({ method: "Generate", index: calls, ids: ["ok", "bad"] });

    worker.faults = { unavailableAfter: () => 1 };
    try {
      const got: string[] = [];
      const err = await (async () => {
        for await (const m of generator.generate({ items: [item("a"), item("b")], output: OutputMode.OUTPUT_MODE_STORE, maxBatchSize: 2 }, new Metadata())) {
          const ev = (m as GenerateResponse).event;
          if (ev?.$case === "image") got.push(ev.value.id);
        }
      })().catch((e: { code: number }) => e);
      expect(got).toEqual(["a"]);
      expect((err as { code: number }).code).toBe(status.UNAVAILABLE);
    } finally {
      worker.faults = {};
    }
  });
});
