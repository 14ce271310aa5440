// The tiny generators that fail on purpose, as real worker processes over gRPC: sd-nan's
// images carry the nan_pixels defect and sd-black's all_black. What the orchestrator does with
// defective images (reported, never kept, counted) is tested with test workers in
// tests/stages/images.test.ts.
import { join } from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { execa, type ResultPromise } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { OutputMode } from "../../src/gen/pdsdpo/v1/common.js";
import { ImageDefect, ImageGeneratorServiceClient, type GeneratedImage } from "../../src/gen/pdsdpo/v1/image_generator.js";
import { ROOT, tempDir } from "../helpers.js";

const procs: ResultPromise[] = [];

/** Starts a real generator worker and resolves its address once its model serves. */
async function serve(model: string, store: string): Promise<string> {
  const proc = execa(
    join(ROOT, ".venv/bin/python"),
    ["-m", "pds_dpo_workers", "serve", "--kind", "image-generator", "--model", JSON.stringify({ source: "MODEL_SOURCE_TINY", id: model }), "--store", store, "--port", "0", "--cpu-threads", "1", "--device", "cpu"],
    { env: { HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", PYTHONUNBUFFERED: "1" }, buffer: false, reject: false, stderr: "ignore" },
  );
  procs.push(proc);
  return new Promise<string>((resolve, reject) => {
    let address = "";
    let out = "";
    proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      for (const line of out.split("\n")) {
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as { event: string; address?: string; message?: string };
        if (e.event === "listening") address = e.address!;
        if (e.event === "serving" && address) resolve(address);
        if (e.event === "load_failed") reject(new Error(`${model}: ${e.message}`));
      }
      out = out.slice(out.lastIndexOf("\n") + 1);
    });
    void proc.then((r) => reject(new Error(`${model} exited (${r.exitCode ?? r.signal}) before serving`)));
  });
}

async function generate(address: string): Promise<GeneratedImage[]> {
  const client = new ImageGeneratorServiceClient(address, credentials.createInsecure());
  try {
    const items = [5, 9].map((g, i) => ({ id: `i${i}`, prompt: "a red cup on a table", negativePrompt: "", guidanceScale: g, steps: 2, width: 64, height: 64, seed: 7 + i, generatorDevice: "" }));
    const call = client.generate({ items, output: OutputMode.OUTPUT_MODE_INLINE, maxBatchSize: 2 }, new Metadata(), { deadline: new Date(Date.now() + 120_000) });
    const images: GeneratedImage[] = [];
    for await (const msg of call) {
      const ev = (msg as { event?: { $case: string; value: GeneratedImage } }).event;
      if (ev?.$case === "image") images.push(ev.value);
    }
    return images;
  } finally {
    client.close();
  }
}

describe("defective tiny generators", () => {
  afterAll(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.allSettled(procs);
  });

  // Two worker processes starting side by side: 10 to 30 s on 2 busy cores.
  it("sd-nan makes nan_pixels images and sd-black all_black ones", { timeout: 180_000 }, async () => {
    const store = tempDir("pdsdpo-defects-");
    const [nan, black] = await Promise.all([serve("sd-nan", store), serve("sd-black", store)]);
    const [nanImages, blackImages] = await Promise.all([generate(nan), generate(black)]);
    for (const [images, defect] of [
      [nanImages, ImageDefect.IMAGE_DEFECT_NAN_PIXELS],
      [blackImages, ImageDefect.IMAGE_DEFECT_ALL_BLACK],
    ] as const) {
      expect(images.map((i) => i.id).sort()).toEqual(["i0", "i1"]);
      for (const img of images) {
        expect(img.error).toBeUndefined();
        expect(img.defects).toEqual([defect]);
        expect(img.image?.kind?.$case).toBe("inline");
      }
    }
  });
});
