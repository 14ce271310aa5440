// `orchestrate runs`, `show` and `diff` on a store of real runs (test workers), through the
// CLI's main in this process; bad input (unknown run, no store, corrupt manifests) exit 2.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { diffRuns, diffText, fmtNumber } from "../../src/manifest/summary.js";
import { tempDir } from "../helpers.js";
import type { Manifest } from "../../src/manifest/types.js";
import { Fleet, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";
import { imagePrompts } from "../support/records.js";

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), isTTY: false });
  return { code, stdout, stderr };
}

describe("runs, show and diff", { timeout: 30_000 }, () => {
  const dir = tempDir("pdsdpo-runs-");
  const store = join(dir, "store");
  let fleet: Fleet;
  const manifests: Record<string, Manifest> = {};

  beforeAll(async () => {
    fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo"]));
    const stages = (lr: number) => [STAGE.images(), STAGE.responses(), STAGE.train({ optim: `{lr: ${lr}, max_steps: 2, batch_size: 1}` })].join("\n");
    const configA = writeExperiment(join(dir), { workers: fleet.yaml(), prompts: 3, stages: stages(0.001), file: "a.yaml" });
    const configB = writeExperiment(join(dir), { workers: fleet.yaml(), prompts: 3, stages: stages(0.002), file: "b.yaml" });
    for (const [id, config, until] of [["ra", configA, undefined], ["rb", configB, undefined], ["rc", configA, "images"]] as const) {
      const r = await runIn(config, store, { runId: id, until });
      expect(r.status, String(r.error)).toBe("succeeded");
      manifests[id] = r.manifest as unknown as Manifest;
    }
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("runs: one line per run, oldest first, with its status, stages, pairs and final metrics; --json the same as objects", async () => {
    const text = await cli(["runs", "--store", store]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split("\n");
    expect(lines.map((l) => l.split(" ")[0])).toEqual(["ra", "rb", "rc"]);
    // Aligned columns: each run's start at the same place.
    expect(new Set(lines.map((l, i) => l.indexOf(Object.values(manifests)[i]!.started_at))).size).toBe(1);
    const loss = manifests.ra!.stages.train!.final_metrics!.loss!;
    expect(lines[0]).toMatch(new RegExp(`^ra  succeeded  ${manifests.ra!.started_at}  [\\d.]+s +images,responses,train  pairs=${manifests.ra!.outputs.dataset!.pairs}  .*train\\.loss=`));
    expect(lines[2]).toMatch(/^rc  succeeded  \S+  [\d.]+s +images +pairs=-$/);

    const json = await cli(["runs", "--store", store, "--json"]);
    const rows = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { id: string; stages_done: string[]; pairs: number | null; metrics: Record<string, number>; duration_s: number });
    expect(rows.map((r) => r.id)).toEqual(["ra", "rb", "rc"]);
    expect(rows[0]!.metrics["train.loss"]).toBe(loss);
    expect(rows[0]!.duration_s).toBeCloseTo((Date.parse(manifests.ra!.finished_at!) - Date.parse(manifests.ra!.started_at)) / 1000, 3);
    expect(rows[2]).toMatchObject({ stages_done: ["images"], pairs: null });
  });

  it("show: the manifest as a summary of run, workers, stages, outputs and metrics; --json as one object", async () => {
    const r = await cli(["show", "ra", "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    const m = manifests.ra!;
    expect(r.stdout).toContain(`run ra: succeeded`);
    expect(r.stdout).toContain(`config    ${m.config.file} (sha256 ${m.config.sha256.slice(0, 12)}): name fast-test, seed 11`);
    expect(r.stdout).toMatch(/^workers\n  sd: image-generator sd/m);
    expect(r.stdout).toMatch(new RegExp(`^  train: succeeded in [\\d.]+s: .*pairs=${m.outputs.dataset!.pairs}`, "m"));
    expect(r.stdout).toContain(`train/adapter/adapter_model.safetensors: sha256 ${m.outputs.adapter_sha256!.slice(0, 12)}`);
    expect(r.stdout).toMatch(/^metrics\n  train: .*loss=/m);
    const j = JSON.parse((await cli(["show", "ra", "--store", store, "--json"])).stdout) as { id: string; workers: { name: string }[]; hashes: Record<string, string>; kept_images: number };
    expect(j.id).toBe("ra");
    expect(j.workers.map((w) => w.name)).toEqual(Object.keys(m.workers));
    expect(j.hashes["dataset/pairs.jsonl"]).toBe(m.outputs.dataset!.sha256);
    expect(j.hashes["train/adapter/adapter_model.safetensors"]).toBe(m.outputs.adapter_sha256);
    expect(j.kept_images).toBe(m.stages.images!.counts!.kept);
    expect(j.kept_images).toBeGreaterThan(0);
  });

  it("diff: config first, then stages, hashes and metrics; a run against itself has none", async () => {
    const r = await cli(["diff", "ra", "rb", "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("stages.train.optim.lr: 0.001 -> 0.002");
    const headings = r.stdout.split("\n").filter((l) => /^[a-z]+$/.test(l));
    expect(headings[0]).toBe("config");
    const order = ["run", "config", "workers", "stages", "hashes", "metrics"];
    expect(headings.map((h) => order.indexOf(h))).toEqual([...headings.map((h) => order.indexOf(h))].sort((x, y) => x - y));
    const j = JSON.parse((await cli(["diff", "ra", "rb", "--store", store, "--json"])).stdout) as { differences: { section: string; key: string; a: unknown; b: unknown }[] };
    expect(j.differences).toContainEqual({ section: "config", key: "stages.train.optim.lr", a: 0.001, b: 0.002 });
    // Same images and answers (same seed, same workers), so the same pairs; only training differs.
    expect(j.differences.filter((d) => d.key === "dataset/pairs.jsonl")).toEqual([]);
    expect(j.differences.filter((d) => d.key === "train/adapter/adapter_model.safetensors")).toHaveLength(1);
    expect(j.differences.filter((d) => d.section === "workers")).toEqual([]);

    // A partial run: stages and outputs it lacks are named.
    const partial = JSON.parse((await cli(["diff", "ra", "rc", "--store", store, "--json"])).stdout) as { differences: { section: string; key: string; a: unknown; b: unknown }[] };
    expect(partial.differences).toContainEqual({ section: "run", key: "stages_done", a: "images,responses,train", b: "images" });
    expect(partial.differences).toContainEqual(expect.objectContaining({ section: "stages", key: "train.status", a: "succeeded" }));
    expect(partial.differences).toContainEqual({ section: "hashes", key: "train/adapter/adapter_model.safetensors", a: manifests.ra!.outputs.adapter_sha256, b: undefined });

    const same = await cli(["diff", "ra", "ra", "--store", store]);
    expect(same.stdout).toBe("ra and ra: no differences in config, workers, stages, hashes or metrics\n");
  });

  it("diff: a worker whose model or environment changed is named by its fingerprint's field; kept images are counted", () => {
    const a = manifests.ra!;
    const b = structuredClone(a);
    const fp = b.workers.sd!.fingerprint as unknown as { model: { weightsSha256: string }; environment: string };
    fp.model.weightsSha256 = "f".repeat(64);
    fp.environment = `image:sha256:${"e".repeat(64)}`;
    // The kept images come from each run's image records (read by the diff command).
    const keptA = Object.fromEntries(imagePrompts(join(store, "runs", "ra"), a).flatMap((p) => (p.kept ? [[p.kept.path, p.kept.sha256]] : [])));
    const keptB = { ...keptA, [Object.keys(keptA)[0]!]: "0".repeat(64) };
    const diffs = diffRuns(a, b, { a: keptA, b: keptB });
    expect(diffs.map((d) => `${d.section} ${d.key}`)).toEqual(["workers sd.model.weightsSha256", "workers sd.environment", "hashes kept images"]);
    const text = diffText("ra", "ra-edited", diffs);
    expect(text).toContain(`  sd.model.weightsSha256: ${(a.workers.sd!.fingerprint as unknown as { model: { weightsSha256: string } }).model.weightsSha256.slice(0, 12)} -> ffffffffffff\n`);
    expect(text).toContain(`  sd.environment: python:`);
    expect(text).toContain(`-> image:sha256:eeeeeeeeeeee\n`);
    expect(text).toContain(`  kept images: 1 of ${Object.keys(keptA).length} differ (${Object.keys(keptA)[0]})\n`);
    expect([fmtNumber(0.65384), fmtNumber(2158), fmtNumber(-3.7842e-4), fmtNumber(1e7 + 0.5)]).toEqual(["0.6538", "2158", "-3.784e-4", "1.000e+7"]);
  });

  it("bad input: an unknown run, a store that is not one, a corrupt or foreign manifest: one line, exit 2", async () => {
    const oneLine = async (argv: string[], pattern: RegExp) => {
      const r = await cli(argv);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(pattern);
    };
    await oneLine(["show", "nope", "--store", store], /^error: no run 'nope' in .*store \(orchestrate runs --store .* lists them\)$/);
    await oneLine(["diff", "ra", "nope", "--store", store], /^error: no run 'nope'/);
    await oneLine(["show", "../ra", "--store", store], /^error: bad run id '\.\.\/ra'/);
    await oneLine(["runs", "--store", dir], /^error: --store .*: not a pds-dpo store \(no runs\/ directory\)$/);
    await oneLine(["runs", "--store", join(dir, "missing")], /^error: --store .*missing: no such directory$/);
    await oneLine(["runs", "--store", join(dir, "a.yaml")], /^error: --store .*a\.yaml: not a directory$/);

    const bad = join(dir, "bad-store");
    for (const [id, text] of [["broken", "{\"schema\": \"pds-dpo/manifest@1\", "], ["foreign", JSON.stringify({ schema: "other/thing@2" })], ["partial", JSON.stringify({ schema: "pds-dpo/manifest@2", run_id: "partial" })]]) {
      mkdirSync(join(bad, "runs", id!), { recursive: true });
      writeFileSync(join(bad, "runs", id!, "manifest.json"), text!);
    }
    await oneLine(["show", "broken", "--store", bad], /^error: .*runs\/broken\/manifest\.json: corrupt manifest \(not JSON: .*\)$/);
    await oneLine(["show", "foreign", "--store", bad], /^error: .*runs\/foreign\/manifest\.json: not a pds-dpo manifest \(schema "other\/thing@2", not pds-dpo\/manifest@2\)$/);
    await oneLine(["diff", "partial", "broken", "--store", bad], /^error: .*runs\/partial\/manifest\.json: not a complete manifest: config is missing$/);
    // runs: the readable ones listed, each unreadable one named on stderr, exit 2.
    mkdirSync(join(bad, "runs", "ra"));
    writeFileSync(join(bad, "runs", "ra", "manifest.json"), JSON.stringify(manifests.ra));
    const listed = await cli(["runs", "--store", bad]);
    expect(listed.code).toBe(2);
    expect(listed.stdout).toMatch(/^ra  succeeded/);
    expect(listed.stderr.trim().split("\n")).toHaveLength(3);
  });
});
