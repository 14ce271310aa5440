#!/usr/bin/env node
// Regenerates the wire code from proto/: ts-proto (grpc-js services) into src/gen and
// grpcio-tools output into python_workers/pds_dpo_workers/gen.
// `--check` generates into a temporary directory and fails when the committed code differs.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const targets = { ts: join(root, "src/gen"), py: join(root, "python_workers/pds_dpo_workers/gen") };
const python = process.env.PDS_DPO_PYTHON ?? join(root, ".venv/bin/python");
const check = process.argv.includes("--check");

function protoFiles() {
  const dir = join(root, "proto/pdsdpo/v1");
  return readdirSync(dir).filter((f) => f.endsWith(".proto")).sort().map((f) => `pdsdpo/v1/${f}`);
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p).map((f) => join(name, f)));
    else if (!name.endsWith(".pyc") && name !== "__pycache__") out.push(name);
  }
  return out.filter((f) => !f.includes("__pycache__")).sort();
}

function genInto(tsOut, pyOut) {
  rmSync(tsOut, { recursive: true, force: true });
  rmSync(pyOut, { recursive: true, force: true });
  mkdirSync(pyOut, { recursive: true });
  // buf writes the template's `out` relative to --output; point it at a scratch root.
  const scratch = mkdtempSync(join(tmpdir(), "pdsdpo-gen-ts-"));
  execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--template", join(root, "buf.gen.yaml"), "--output", scratch], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  cpSync(join(scratch, "src/gen"), tsOut, { recursive: true });
  rmSync(scratch, { recursive: true, force: true });
  execFileSync(
    python,
    ["-m", "grpc_tools.protoc", "-Iproto", `--python_out=${pyOut}`, `--pyi_out=${pyOut}`, `--grpc_python_out=${pyOut}`, ...protoFiles()],
    { cwd: root, stdio: ["ignore", "inherit", "inherit"], },
  );
}

if (!check) {
  genInto(targets.ts, targets.py);
  console.log(`generated ${relative(root, targets.ts)} and ${relative(root, targets.py)}`);
} else {
  const tmp = mkdtempSync(join(tmpdir(), "pdsdpo-gen-check-"));
  const fresh = { ts: join(tmp, "ts"), py: join(tmp, "py") };
  genInto(fresh.ts, fresh.py);
  const stale = [];
  for (const side of ["ts", "py"]) {
    const want = listFiles(fresh[side]);
    const have = listFiles(targets[side]);
    for (const f of new Set([...want, ...have])) {
      const a = join(fresh[side], f);
      const b = join(targets[side], f);
      if (!existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b))) stale.push(relative(root, b));
    }
  }
  rmSync(tmp, { recursive: true, force: true });
  if (stale.length > 0) {
    console.error(`generated code is stale; run \`npm run gen\`: ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log("generated code is up to date");
}
