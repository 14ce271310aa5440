// A token in the orchestrator's environment reaches the workers but never the run's files.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { BIN, tempDir, writeTinyExperiment } from "../helpers.js";

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("secrets", () => {
  it("HF_TOKEN never reaches the manifest, events, logs or report", async () => {
    const dir = tempDir();
    const secret = "hf_do_not_leak_4f7a9c";
    const r = await execa("node", [BIN, "run", writeTinyExperiment(dir, { limit: 1, scales: [5] }), "--store", join(dir, "store"), "--run-id", "s1", "--json"], {
      reject: false,
      env: { HF_TOKEN: secret, HF_HUB_OFFLINE: "1" },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(secret);
    const files = filesUnder(join(dir, "store", "runs", "s1"));
    expect(files.some((f) => f.endsWith("manifest.json"))).toBe(true);
    for (const f of files) expect(readFileSync(f).includes(secret), f).toBe(false);
  });
});
