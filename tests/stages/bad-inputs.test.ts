// Every bad input is caught before work starts, through the real CLI: exit 2 and a short
// message, never "internal error" (exit 1) and never a failure after workers started.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, tempDir, writeTinyExperiment } from "../helpers.js";

/** The tiny experiment with its prompts file replaced. */
function withPrompts(content: string | Uint8Array): { dir: string; config: string } {
  const dir = tempDir("pdsdpo-bad-");
  const config = writeTinyExperiment(dir);
  writeFileSync(join(dir, "prompts.jsonl"), content);
  return { dir, config };
}

const line = (fields: Record<string, unknown>) => JSON.stringify({ id: "a-1", category: "art", t2i_prompt: "a cat", instruction: "<image> what?", ...fields });

describe("bad inputs: exit 2 with a short message", { timeout: 30_000 }, () => {
  it("prompts: a 300-character id, a NUL, a 100 KiB prompt, invalid UTF-8 and a file that is no JSON lines", async () => {
    const cases: [string | Uint8Array, RegExp][] = [
      [`${line({ id: "p".repeat(300) })}\n`, /prompts\.jsonl:1: id: 300 characters; at most 128 \(line \d+\)$/],
      [`${line({ t2i_prompt: "a\u0000cat" })}\n`, /prompts\.jsonl:1: t2i_prompt: control character U\+0000 at character 2 \(line \d+\)$/],
      [`${line({ instruction: "w".repeat(100 * 1024) })}\n`, /prompts\.jsonl:1: instruction: 102400 bytes; at most 65536 \(64 KiB\) \(line \d+\)$/],
      [Buffer.concat([Buffer.from(`${line({})}\n{"id": "a-2", "t2i_prompt": "`), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]), /prompts\.jsonl:2: not valid UTF-8: byte 0xff at byte offset \d+ \(line \d+\)$/],
      ["name: not-jsonl\nworkers: {}\nstages: {}\n".repeat(50), /prompts\.jsonl: not a JSON lines file: line 1 is not JSON \(line \d+\)$/],
    ];
    for (const [content, message] of cases) {
      const { config } = withPrompts(content);
      const r = await cli(["validate", config]);
      expect(r.exitCode, r.stderr).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
  });

  it("130,000 bad prompt lines: the first 20 problems and a count of the rest", async () => {
    const { config } = withPrompts(`${line({})}\n${'{"id": "x", "category": "art"}\n'.repeat(130_000)}`);
    const r = await cli(["validate", config]);
    expect(r.exitCode, r.stderr.slice(0, 500)).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[0]).toMatch(/prompts\.jsonl:2: t2i_prompt: expected string, received undefined/);
    expect(lines[20]).toBe("... and 129980 more problems");
  });

  it("YAML: an alias bomb and 20,000-deep nesting", async () => {
    const dir = tempDir("pdsdpo-bad-");
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(", ")}]`);
    writeFileSync(join(dir, "bomb.yaml"), `${bomb.join("\n")}\n`);
    const r1 = await cli(["validate", join(dir, "bomb.yaml")]);
    expect(r1.exitCode, r1.stderr).toBe(2);
    expect(r1.stderr.trim()).toBe('(document): YAML aliases expand too far (more than 100 expansions; a "billion laughs" document?)');

    writeFileSync(join(dir, "deep.yaml"), `a: ${"{b: ".repeat(20_000)}1${"}".repeat(20_000)}\n`);
    const r2 = await cli(["validate", join(dir, "deep.yaml")]);
    expect(r2.exitCode, r2.stderr.slice(0, 500)).toBe(2);
    expect(r2.stderr.trim()).toBe("a.b.b.b…: YAML nested more than 64 levels deep (line 1)");
  });

  it("a config env key that is no environment variable name, or names a secret", async () => {
    const dir = tempDir("pdsdpo-bad-");
    const config = writeTinyExperiment(dir);
    writeFileSync(config, readFileSync(config, "utf8").replace("runtime: {type: local, device: cpu, cpu_threads: 1}", "runtime: {type: local, device: cpu, cpu_threads: 1, env: {'BAD-NAME': x, WANDB_KEY: y}}"));
    const r = await cli(["validate", config]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "workers.sd.runtime.env.BAD-NAME: not an environment variable name (letters, digits and '_', not starting with a digit) (line 7)",
      "workers.sd.runtime.env.WANDB_KEY: looks like a secret; secrets come from the environment (export WANDB_KEY), never from the config (line 7)",
    ]);
  });

  it("--store pointing at a file, for every command that uses the store", async () => {
    const dir = tempDir("pdsdpo-bad-");
    const config = writeTinyExperiment(dir);
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "x");
    for (const args of [["run", config], ["plan", config], ["resume", "r1"], ["report", "r1"], ["replay", join(dir, "m.json")]]) {
      const r = await cli([...args, "--store", file]);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim()).toBe(`error: --store ${file}: not a directory`);
    }
    const r = await cli(["run", config, "--store", "/etc/passwd"]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr.trim()).toBe("error: --store /etc/passwd: not a directory");
    expect(existsSync(join(dir, "not-a-dir"))).toBe(true);
  });

  it("replay of a manifest that is not one, or misses fields", async () => {
    const dir = tempDir("pdsdpo-bad-");
    const cases: [string, string][] = [
      ["{}", "not a pds-dpo manifest (no schema field)"],
      ["[1, 2]", "not a pds-dpo manifest (not a JSON object)"],
      ['{"schema": "pds-dpo/manifest@2"}', "not a complete manifest: run_id is missing"],
      ['{"schema": "pds-dpo/manifest@2", "run_id": "r1", "config": {"file": "/x/e.yaml"}}', "not a complete manifest: config.resolved is missing"],
    ];
    for (const [i, [text, message]] of cases.entries()) {
      const path = join(dir, `m${i}.json`);
      writeFileSync(path, text);
      const r = await cli(["replay", path, "--store", join(dir, "store")]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr.trim()).toBe(`error: ${path}: ${message}`);
    }
  });
});
