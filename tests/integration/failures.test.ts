// Bad input and failing workers, through the real CLI, gRPC stack and processes.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { alive, BIN, jsonLines, readJson, tempDir, writeTinyExperiment } from "../helpers.js";
import { Fleet, STAGE, workers, writeExperiment } from "../support/fleet.js";

describe("orchestrate validate and run on bad configs", () => {
  const cases: [string, (yaml: string) => string, RegExp][] = [
    ["an unknown key", (y) => y.replace("    steps: 2\n", "    steps: 2\n    stepz: 3\n"), /^stages\.images\.stepz: unknown key \(line 21\)$/],
    ["a wrong type", (y) => y.replace("steps: 2", "steps: two"), /^stages\.images\.steps: expected number, received string \(line 20\)$/],
    ["a missing prompts file", (y) => y.replace("prompts: prompts.jsonl", "prompts: missing.jsonl"), /^stages\.images\.prompts: file not found: .*missing\.jsonl \(line 15\)$/],
    ["a YAML syntax error", (y) => y.replace("guidance_scales: [5, 7, 9, 11]", "guidance_scales: [5, 7, 9, 11"), /^stages\.images\.guidance_scales(\[\d+\])?: YAML syntax error: .* \(line 20\)$/],
  ];
  for (const [what, mutate, expected] of cases) {
    it(`${what}: exit 2, one line naming the key path and line, no worker started`, async () => {
      const dir = tempDir();
      const config = writeTinyExperiment(dir);
      writeFileSync(config, mutate(readFileSync(config, "utf8")));
      const v = await execa("node", [BIN, "validate", config], { reject: false });
      expect(v.exitCode).toBe(2);
      const lines = v.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
      const store = join(dir, "store");
      const r = await execa("node", [BIN, "run", config, "--store", store], { reject: false });
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trim()).toBe(v.stderr.trim());
      // Nothing was started or written: no run directory, no worker log.
      expect(existsSync(store)).toBe(false);
    });
  }

  it("bad usage exits 2 with one line", async () => {
    const r = await execa("node", [BIN, "run"], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe("error: usage: orchestrate run <experiment.yaml> [--store DIR] [--run-id ID] [--until STAGE] [--no-cache] [--json]");
  });
});

// Real workers start in each (two to four processes): 20 to 30 s beside other test files.
describe("failing workers", { timeout: 150_000 }, () => {
  it("a worker killed mid-batch: a clear error naming the worker and its log, no hang", async () => {
    const dir = tempDir();
    // Enough work that the generator is surely mid-batch when it is killed.
    const config = writeTinyExperiment(dir, { limit: 8, steps: 40, batch: 4 });
    const store = join(dir, "store");
    const run = execa("node", [BIN, "run", config, "--store", store, "--run-id", "k1", "--json"], { reject: false, timeout: 170_000 });
    let buf = "";
    let sdPid = 0;
    let killed = false;
    run.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      for (const e of jsonLines(buf)) {
        if (e.type === "worker.ready" && e.worker === "sd") sdPid = e.pid as number;
        if (!killed && sdPid && e.type === "image.generated") {
          killed = true;
          process.kill(sdPid, "SIGKILL");
        }
      }
    });
    const t0 = Date.now();
    const r = await run;
    expect(killed).toBe(true);
    expect(r.exitCode).toBe(1);
    const log = join(store, "runs", "k1", "logs", "sd.log");
    expect(r.stderr.trim()).toBe(`error: worker 'sd' (image-generator) died during Generate (killed by SIGKILL); log: ${log}`);
    expect(Date.now() - t0).toBeLessThan(120_000);
    const manifest = readJson<{ status: string; error: { code: string } }>(join(store, "runs", "k1", "manifest.json"));
    expect(manifest.status).toBe("failed");
    expect(manifest.error.code).toBe("worker_crashed");
    // The other worker was stopped, not left behind.
    const events = jsonLines(readFileSync(join(store, "runs", "k1", "events.jsonl"), "utf8"));
    const pickPid = events.find((e) => e.type === "worker.ready" && e.worker === "pick")!.pid as number;
    expect(alive(pickPid)).toBe(false);
  });

  it("a worker that never becomes healthy fails after its start timeout", async () => {
    const dir = tempDir();
    // A model directory whose config is a FIFO: loading blocks forever, as on a hung mount.
    const model = join(dir, "hung-model");
    await execa("mkdir", [model]);
    await execa("mkfifo", [join(model, "model_index.json")]);
    const config = writeTinyExperiment(dir, { limit: 1, generatorModel: "{source: path, path: hung-model}", generatorExtra: ", start_timeout_s: 4" });
    const store = join(dir, "store");
    const t0 = Date.now();
    const r = await execa("node", [BIN, "run", config, "--store", store, "--run-id", "h1", "--json"], { reject: false, timeout: 120_000 });
    expect(r.exitCode).toBe(1);
    const log = join(store, "runs", "h1", "logs", "sd.log");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^error: worker 'sd' \\(image-generator\\) did not become healthy within 4s; log: ${log.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    expect(Date.now() - t0).toBeLessThan(60_000);
    const started = jsonLines(r.stdout).filter((e) => e.type === "worker.ready").map((e) => e.pid as number);
    for (const pid of started) expect(alive(pid)).toBe(false);
  });

  it("the images stage starts while later workers load; one that cannot start ends the run at once", async () => {
    const dir = tempDir();
    const store = join(dir, "store");
    const model = join(dir, "hung-model");
    await execa("mkdir", [model]);
    await execa("mkfifo", [join(model, "config.json")]);
    // A slow image stage (16 images of 1 s each) on test workers, and a real CPU responder process (started with the run)
    // whose load hangs (its config is a FIFO) until the test kills it while images are made.
    const fleet = await Fleet.start(store, workers(["sd", "pick", "rm"], { sd: { faults: { delayMs: 1000 } } }));
    try {
      const config = writeExperiment(dir, {
        // Spawned, not forked from the worker host (a runtime.env of its own): its command line names its model, for pkill.
        workers: `${fleet.yaml()}  a: {kind: responder, model: {source: path, path: hung-model}, runtime: {type: local, device: cpu, cpu_threads: 1, start_timeout_s: 300, env: {PDS_DPO_TEST_SPAWNED: "1"}}}\n`,
        prompts: 8,
        stages: [STAGE.images(), STAGE.responses({ responders: "[a]" })].join("\n"),
      });
      const run = execa("node", [BIN, "run", config, "--store", store, "--run-id", "late", "--json"], { reject: false, timeout: 120_000 });
      let buf = "";
      let killedAt = 0;
      run.stdout!.on("data", (chunk: Buffer) => {
        buf += chunk.toString();
        // Two images in, the responder's process is surely loading: kill it.
        if (!killedAt && jsonLines(buf.slice(0, buf.lastIndexOf("\n") + 1)).filter((e) => e.type === "image.generated").length >= 2) {
          killedAt = Date.now();
          void execa("pkill", ["-KILL", "-f", model], { reject: false });
        }
      });
      const r = await run;
      expect(killedAt).toBeGreaterThan(0);
      expect(r.exitCode).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^error: worker 'a' \(responder\) exited \(SIGKILL\) before it was ready; log: /);
      // At once: not after the image stage (16 s) nor the start timeout.
      expect(Date.now() - killedAt).toBeLessThan(12_000);
      const events = jsonLines(r.stdout);
      expect(events.filter((e) => e.type === "image.generated").length).toBeLessThan(16);
      expect(events.find((e) => e.type === "stage.finished" && e.stage === "images")).toMatchObject({ status: "failed" });
    } finally {
      await fleet.stop();
    }
  });

  it("Ctrl-C cancels the batch on the worker, stops every worker and exits 130", async () => {
    const dir = tempDir();
    const config = writeTinyExperiment(dir, { limit: 8, steps: 300, batch: 8 });
    const store = join(dir, "store");
    const run = execa("node", [BIN, "run", config, "--store", store, "--run-id", "c1", "--json"], { reject: false, timeout: 170_000 });
    let buf = "";
    const pids: number[] = [];
    let sent = false;
    run.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      for (const e of jsonLines(buf)) {
        if (e.type === "worker.ready" && !pids.includes(e.pid as number)) pids.push(e.pid as number);
        if (!sent && e.type === "stage.started") {
          sent = true;
          run.kill("SIGINT");
        }
      }
    });
    const r = await run;
    expect(sent).toBe(true);
    expect(r.exitCode).toBe(130);
    expect(r.stderr.trim()).toBe("error: interrupted; workers were stopped and finished items are kept in the store");
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(readFileSync(join(store, "runs", "c1", "logs", "sd.log"), "utf8")).toContain("shutting down: cancelling calls in flight");
    expect(readJson<{ status: string }>(join(store, "runs", "c1", "manifest.json")).status).toBe("failed");
  });
});
