// Worker containers stop with the run, however it ends: Ctrl-C, SIGKILL of the orchestrator
// (its containers' reaper removes them), or a stage that fails. Checked with `podman ps -a`.
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, ROOT, tempDir, until } from "../helpers.js";
import { ENGINE, ENGINE_ENV, ensureImages, image, workerContainers } from "./engine.js";

beforeAll(ensureImages, 40 * 60_000);

/** An image stage on two containers named after the test (container names start with pdsdpo-<worker>-). */
function experiment(tag: string, scorerModel = "{source: tiny, name: clip-scorer}"): string {
  const dir = tempDir();
  mkdirSync(join(dir, "empty"));
  copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts.jsonl"));
  const rt = (kind: string) => `{type: docker, image: ${image(kind)}, device: cpu, cpu_threads: 1}`;
  writeFileSync(
    join(dir, "experiment.yaml"),
    `name: stops
seed: 1
workers:
  gen-${tag}: {kind: image-generator, model: {source: tiny, name: sd}, runtime: ${rt("image-generator")}, batch_size: 1}
  pick-${tag}: {kind: image-scorer, model: ${scorerModel}, runtime: ${rt("image-scorer")}}
stages:
  images:
    prompts: prompts.jsonl
    generator: gen-${tag}
    scorer: pick-${tag}
    guidance_scales: [5, 7, 9, 11]
    steps: 8
    size: 64
`,
  );
  return join(dir, "experiment.yaml");
}

// Tags unique to this process, so that no other run's containers (another test process) count.
const unique = (tag: string) => `${tag}-${randomBytes(3).toString("hex")}`;
const mine = (tag: string) => workerContainers().filter((n) => n.startsWith(`pdsdpo-gen-${tag}-`) || n.startsWith(`pdsdpo-pick-${tag}-`));

describe(`worker containers stop with the run (${ENGINE})`, () => {
  for (const [tag, signal] of [[unique("kill"), "SIGKILL"], [unique("int"), "SIGINT"]] as const) {
    it(`${signal} of the orchestrator once its containers run: none is left`, { timeout: 180_000 }, async () => {
      const run = cli(["run", experiment(tag), "--store", tempDir()], { timeoutMs: 170_000, env: ENGINE_ENV });
      expect(await until(() => mine(tag).length === 2, 150_000), "both containers exist").toBe(true);
      run.kill(signal);
      const r = await run;
      if (signal === "SIGINT") expect(r.exitCode, r.stderr).toBe(130);
      else expect(r.signal).toBe("SIGKILL");
      expect(await until(() => mine(tag).length === 0, 30_000), `left: ${mine(tag).join(", ")}`).toBe(true);
    });
  }

  it("a worker that cannot load fails the stage, and no container is left", { timeout: 180_000 }, async () => {
    // An empty model directory passes validation and fails in the container, at load.
    const tag = unique("fail");
    const r = await cli(["run", experiment(tag, "{source: path, path: empty, type: clip}"), "--store", tempDir()], { timeoutMs: 170_000, env: ENGINE_ENV });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain(`worker 'pick-${tag}' (image-scorer) could not load its model`);
    // The generator's container, started beside it, is removed as the run ends (within seconds).
    expect(await until(() => mine(tag).length === 0, 30_000), `left: ${mine(tag).join(", ")}`).toBe(true);
  });
});
