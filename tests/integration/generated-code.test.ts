// Generated code is never edited by hand and never stale; protos stay buf-lint clean.
import { cpSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers.js";

const buf = join(ROOT, "node_modules/.bin/buf");

describe("generated code", () => {
  it("is up to date with proto/", async () => {
    const r = await execa("node", ["scripts/gen-proto.mjs", "--check"], { cwd: ROOT, reject: false });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });

  it("the check fails when a proto changed and the code was not regenerated", async () => {
    // A copy of the project's proto and generated trees, with one field added to a proto.
    const dir = tempDir("pdsdpo-gen-");
    for (const p of ["proto", "third_party", "src/gen", "python_workers/pds_dpo_workers/gen", "scripts", "buf.yaml", "buf.gen.yaml"]) {
      cpSync(join(ROOT, p), join(dir, p), { recursive: true });
    }
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    const proto = join(dir, "proto/pdsdpo/v1/worker.proto");
    writeFileSync(proto, readFileSync(proto, "utf8").replace("message DescribeRequest {}", "message DescribeRequest {\n  bool verbose = 1;\n}"));
    const env = { PDS_DPO_PYTHON: join(ROOT, ".venv/bin/python") };
    const r = await execa("node", ["scripts/gen-proto.mjs", "--check"], { cwd: dir, reject: false, env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/generated code is stale; run `npm run gen`: .*worker/);
  });
});

describe("proto/", () => {
  it("is buf lint clean", async () => {
    const r = await execa(buf, ["lint"], { cwd: ROOT, reject: false });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });
});
