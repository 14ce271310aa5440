// The warm worker host with the real CLI: which workers are forked and which spawned, and a
// SIGKILLed orchestrator leaving no process behind (neither the host nor any worker).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { alive, BIN, jsonLines, tempDir, tinyWorkers, until, writePrompts } from "../helpers.js";

const parentOf = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
const commOf = (pid: number): string => readFileSync(`/proc/${pid}/comm`, "utf8").trim();

describe("worker host", () => {
  it("forks CPU workers from one host, spawns one whose runtime.env differs; a SIGKILLed orchestrator takes the host and every worker down", { timeout: 240_000 }, async () => {
    const dir = tempDir();
    writePrompts(dir, 2);
    const workers = tinyWorkers(["sd", "pick"]).replace(/(  pick: \{.*runtime: \{type: local, device: cpu, cpu_threads: 1)\}/, "$1, env: {PDS_DPO_TEST_MARK: spawned}}");
    expect(workers).toContain("PDS_DPO_TEST_MARK");
    const config = join(dir, "x.yaml");
    writeFileSync(config, `name: host\nseed: 1\n${workers}stages:\n  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2, size: 64}\n`);
    const proc = execa("node", [BIN, "run", config, "--store", join(dir, "store"), "--json"], { reject: false, timeout: 200_000, env: { HF_HUB_OFFLINE: "1" } });
    let buf = "";
    const ready = new Map<string, number>();
    const started = new Map<string, unknown>();
    let seen: { sd: number; pick: number; host: number; hostParent: number; pickParent: number; pickEnv: string[] } | undefined;
    proc.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      for (const e of jsonLines(buf.slice(0, buf.lastIndexOf("\n") + 1)) as { type: string; worker?: string; pid?: number; runtime?: { started?: string } }[]) {
        if (e.type === "worker.ready") {
          ready.set(e.worker!, e.pid!);
          started.set(e.worker!, e.runtime?.started);
        }
      }
      if (!seen && ready.size === 2) {
        const [sd, pick] = [ready.get("sd")!, ready.get("pick")!];
        const host = parentOf(sd);
        // Read before the kill: the orphans are reparented once it is gone.
        seen = { sd, pick, host, hostParent: parentOf(host), pickParent: parentOf(pick), pickEnv: readFileSync(`/proc/${pick}/environ`, "utf8").split("\0") };
        proc.kill("SIGKILL");
      }
    });
    const run = await proc;
    expect(run.signal, run.stderr).toBe("SIGKILL");
    expect(seen).toBeDefined();
    const { sd, pick, host, hostParent, pickParent, pickEnv } = seen!;
    // sd was forked from the host (a child of it, in a process group of its own); pick, whose
    // runtime.env sets a variable the orchestrator's environment lacks, was spawned by it.
    expect(host).not.toBe(proc.pid);
    expect(hostParent).toBe(proc.pid);
    expect(commOf(host)).toBe("pds-dpo-host");
    expect(commOf(sd)).toBe("pds-dpo-worker");
    expect(pickParent).toBe(proc.pid);
    expect(pickEnv).toContain("PDS_DPO_TEST_MARK=spawned");
    // What the manifest's worker records say of it.
    expect(Object.fromEntries(started)).toEqual({ sd: "forked", pick: "spawned" });
    // Nobody stopped them: the host sees its stdin close and kills its workers; pick notices its parent is gone.
    expect(await until(() => ![sd, pick, host].some(alive), 20_000), `still alive: ${[sd, pick, host].filter(alive).join(", ")}`).toBe(true);
    const runDir = join(dir, "store", "runs", readdirSync(join(dir, "store", "runs"))[0]!);
    expect(readFileSync(join(runDir, "logs", "sd.log"), "utf8")).toContain("forked from the worker host");
    expect(readFileSync(join(runDir, "logs", "pick.log"), "utf8")).not.toContain("forked from the worker host");
  });
});
