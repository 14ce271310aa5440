// `orchestrate call` against test workers serving the real protos on loopback (the remote
// runtime reaches them as a run would): a unary Describe through the real CLI process, a
// server stream through main in this process, and bad input as one line, exit 2.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { WorkerInfo, workerKindToJSON } from "../../src/gen/pdsdpo/v1/common.js";
import { GenerateResponse } from "../../src/gen/pdsdpo/v1/image_generator.js";
import { decodePng } from "../../src/store/png.js";
import { cli, tempDir } from "../helpers.js";
import { Fleet, STAGE, workers, writeExperiment } from "../support/fleet.js";

async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), isTTY: false });
  return { code, stdout, stderr };
}

describe("orchestrate call", { timeout: 30_000 }, () => {
  const dir = tempDir("pdsdpo-call-");
  const store = join(dir, "store");
  let fleet: Fleet;
  let config: string;

  beforeAll(async () => {
    fleet = await Fleet.start(store, workers(["sd", "pick"]));
    config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: STAGE.images() });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("WorkerService.Describe through the CLI process: the worker's Describe as JSON", async () => {
    const before = fleet.worker("sd").describes;
    const r = await cli(["call", config, "sd", "WorkerService.Describe", "--store", store]);
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const info = WorkerInfo.fromJSON((JSON.parse(lines[0]!) as { info: unknown }).info);
    expect(info.model?.spec?.id).toBe("sd");
    expect(workerKindToJSON(info.kind)).toBe("WORKER_KIND_IMAGE_GENERATOR");
    expect(fleet.worker("sd").describes).toBeGreaterThan(before);
  });

  it("a server stream: each response a JSON line, as ts-proto reads it", async () => {
    const request = { items: [{ id: "x", prompt: "a red cube", seed: 3, guidance_scale: 5, steps: 2, width: 16, height: 24 }], output: "OUTPUT_MODE_INLINE" };
    const r = await inProcess(["call", config, "sd", "pdsdpo.v1.ImageGeneratorService/Generate", "--json", JSON.stringify(request), "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    const responses = r.stdout.trim().split("\n").map((l) => GenerateResponse.fromJSON(JSON.parse(l)));
    const images = responses.flatMap((m) => (m.event?.$case === "image" ? [m.event.value] : []));
    expect(images.map((i) => i.id)).toEqual(["x"]);
    const blob = images[0]!.image!.kind;
    expect(blob?.$case).toBe("inline");
    const png = decodePng(Buffer.from(blob!.$case === "inline" ? blob!.value : new Uint8Array()));
    expect([png.width, png.height]).toEqual([16, 24]);
    expect(fleet.worker("sd").calls.at(-1)).toMatchObject({ method: "Generate", ids: ["x"] });
  });

  it("bad input: unknown service or method, bad JSON, a bad field, an unknown worker: one line naming it, exit 2, no call made", async () => {
    const calls = fleet.worker("sd").modelCalls;
    const cases: [string[], RegExp][] = [
      [["sd", "PaintService.Paint"], /^error: unknown service 'PaintService' \(services: .*ImageGeneratorService.*\)$/],
      [["sd", "WorkerService.Paint"], /^error: unknown method 'Paint' of pdsdpo\.v1\.WorkerService \(methods: Describe\)$/],
      [["sd", "ImageGeneratorService.Generate", "--json", "{items: [}"], /^error: --json: not JSON: /],
      [["sd", "ImageGeneratorService.Generate", "--json", '{"items": [{"seed": "lots"}]}'], /^error: --json: items\[0\]\.seed: expected an integer \(a number or a decimal string\), got "lots"$/],
      [["sd", "ImageGeneratorService.Generate", "--json={\"pictures\": 2}"], /^error: --json: pictures: unknown field of pdsdpo\.v1\.GenerateRequest \(fields: items, output, maxBatchSize\)$/],
      [["painter", "WorkerService.Describe"], /^error: no worker 'painter' in .*experiment\.yaml \(workers: sd, pick\)$/],
      [["sd"], /^error: usage: orchestrate call <experiment\.yaml> <worker> <Service\.Method>/],
    ];
    for (const [args, pattern] of cases) {
      const r = await inProcess(["call", config, ...args, "--store", store]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(pattern);
      expect(r.stdout).toBe("");
    }
    expect(fleet.worker("sd").modelCalls).toBe(calls);
  });
});
