#!/usr/bin/env node
// Builds and tags the worker images, then prints each image's digest.
//   npm run images -- [--engine docker|podman] [--tag TAG] [--registry REG] [--push]
//                     [--platform linux/amd64] [--base cuda|debian|IMAGE] [--wheels DIR]... [--ca-bundle FILE] [--force] [--dry-run]
// One base (docker/base.Dockerfile: Python, the pinned ML stack, the workers' package), a thin
// image per kind on it (docker/<kind>.Dockerfile), the variants in docker/variants/ on their
// kind's image, and, for registry builds, the orchestrator's (docker/orchestrator.Dockerfile).
// Every image carries a label with a content hash of what went into it (its Dockerfile, the
// package's files, the build arguments, its parent); an image whose label matches is not rebuilt.
// --base debian: a Debian bookworm root made here by debootstrap (no registry pull; CPU torch
// from the local wheel directory pip is configured with), what the tests run on.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const HASH_LABEL = "pdsdpo.content-hash";
export const DEBIAN_BASE = "pds-dpo-debian-base:bookworm";
const CUDA_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04";
/** Where a given CA bundle is mounted in a build (pip's PIP_CERT). */
const CA_IN_BUILD = "/etc/pds-dpo-build-ca.crt";

export function workerKinds() {
  return readdirSync(join(root, "docker"))
    .filter((f) => f.endsWith(".Dockerfile") && f !== "base.Dockerfile" && f !== "orchestrator.Dockerfile")
    .map((f) => f.replace(/\.Dockerfile$/, ""))
    .sort();
}

/** docker/variants/<kind>-<name>.Dockerfile: a second image of a kind, built on that kind's image. */
export function variants(kinds = workerKinds()) {
  const dir = join(root, "docker", "variants");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".Dockerfile"))
    .map((f) => {
      const name = f.replace(/\.Dockerfile$/, "");
      const kind = kinds.filter((k) => name.startsWith(`${k}-`)).sort((a, b) => b.length - a.length)[0];
      if (!kind) throw new Error(`docker/variants/${f}: its name must start with a worker kind (${kinds.join(", ")})`);
      return { name, kind, file: `docker/variants/${f}` };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The files of the workers' package that go into the base image (the build context), sorted. */
export function packageFiles(base = root) {
  const out = [];
  const walk = (dir) => {
    for (const e of readdirSync(join(base, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      // Hidden entries are tools' caches (pytest writes python_workers/.pytest_cache while the
      // images build beside it): in the hash, they would rebuild the base after every test run.
      if (e.name.startsWith(".") || e.name === "__pycache__" || e.name.endsWith(".egg-info") || e.name.endsWith(".pyc") || e.name === "tests") continue;
      if (e.isDirectory()) walk(rel);
      else if (e.isFile()) out.push(rel);
    }
  };
  walk("python_workers");
  return out.sort();
}

const sha = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(typeof p === "string" ? p : JSON.stringify(p)).update("\0");
  return h.digest("hex");
};

/** What a local wheel directory offers (names and sizes): part of the base's content hash. */
function wheelListing(dirs) {
  return dirs.map((d) => readdirSync(d).sort().map((f) => `${f}:${statSync(join(d, f)).size}`));
}

/**
 * Pure: the plan of builds, each with its argv (without the content-hash label's value, which
 * `contentHashes` fills in), in build order.
 */
export function buildPlan({ engine = "docker", tag, registry, platform, kinds, variantList = [], baseImage, wheels = [], caBundle, trainerExtras, orchestrator }) {
  const name = (n) => `${registry ? `${registry.replace(/\/$/, "")}/` : ""}pds-dpo-${n}:${tag}`;
  // pip's local wheels and CA bundle reach every build that installs packages, mounted read-only.
  const pip = [...(wheels.length ? [["PIP_FIND_LINKS", wheels.join(" ")]] : []), ...(caBundle ? [["PIP_CERT", CA_IN_BUILD]] : [])];
  const mounts = [...wheels.flatMap((d) => ["--volume", `${d}:${d}:ro`]), ...(caBundle ? ["--volume", `${caBundle}:${CA_IN_BUILD}:ro`] : [])];
  const build = (file, image, args) => [engine, "build", "--platform", platform, ...(engine === "podman" ? ["--format", "docker"] : []), "-f", file, ...[...args, ...pip].flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]), ...mounts, "-t", image];
  const base = name("worker-base");
  const plan = [{ image: base, parent: baseImage, file: "docker/base.Dockerfile", argv: build("docker/base.Dockerfile", base, [["BASE_IMAGE", baseImage]]), context: "package" }];
  for (const k of kinds) {
    const args = [["BASE_IMAGE", base], ...(k === "dpo-trainer" && trainerExtras !== undefined ? [["TRAINER_EXTRAS", trainerExtras]] : [])];
    plan.push({ image: name(k), parent: base, file: `docker/${k}.Dockerfile`, argv: build(`docker/${k}.Dockerfile`, name(k), args), context: "package" });
  }
  for (const v of variantList) plan.push({ image: name(v.name), parent: name(v.kind), file: v.file, argv: build(v.file, name(v.name), [["KIND_IMAGE", name(v.kind)]]), context: "package" });
  if (orchestrator) plan.push({ image: name("orchestrator"), parent: null, file: "docker/orchestrator.Dockerfile", argv: build("docker/orchestrator.Dockerfile", name("orchestrator"), []), context: "repo" });
  return plan;
}

/** Pure: each step's content hash, chained through its parent's. */
export function contentHashes(plan, { readText, packageDigest, extra = {} }) {
  const byImage = new Map();
  for (const step of plan) {
    const parentHash = byImage.get(step.parent) ?? step.parent ?? "";
    const h = sha(step.argv, readText(step.file), step.context === "package" ? packageDigest : "repo", parentHash, extra[step.image] ?? "");
    byImage.set(step.image, h);
  }
  return plan.map((s) => byImage.get(s.image));
}

function labelOf(engine, image) {
  const r = spawnSync(engine, ["image", "inspect", "--format", "{{json .Config.Labels}}", image], { encoding: "utf8" });
  if (r.status !== 0) return null;
  return (JSON.parse(r.stdout.trim() || "null") ?? {})[HASH_LABEL] ?? null;
}

export function imageDigest(engine, image) {
  return execFileSync(engine, ["image", "inspect", "--format", "{{if .RepoDigests}}{{index .RepoDigests 0}}{{else}}{{.Id}}{{end}}", image], { encoding: "utf8" }).trim();
}

/** What this machine's pip is configured with (`pip config list`): its local wheel directories and CA bundle, those that exist. */
export function pipConfig() {
  const r = spawnSync("python3", ["-m", "pip", "config", "list"], { encoding: "utf8" });
  const wheels = new Set();
  let caBundle;
  for (const line of (r.stdout ?? "").split("\n")) {
    const m = /\.(find-links|cert)='([^']+)'/.exec(line);
    if (m?.[1] === "find-links") for (const d of m[2].split(/\s+/)) if (d.startsWith("/") && existsSync(d)) wheels.add(d);
    if (m?.[1] === "cert" && existsSync(m[2])) caBundle = m[2];
  }
  return { wheels: [...wheels], caBundle };
}

/** The Debian mirror apt uses here (sources.list or deb822 .sources), else Debian's own. */
export function aptMirror() {
  const files = ["/etc/apt/sources.list", ...(existsSync("/etc/apt/sources.list.d") ? readdirSync("/etc/apt/sources.list.d").map((f) => `/etc/apt/sources.list.d/${f}`) : [])];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const m = /(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+\/debian)\/?\s*$/m.exec(readFileSync(f, "utf8"));
    if (m) return m[1];
  }
  return "http://deb.debian.org/debian";
}

/** Makes the Debian bookworm base image with debootstrap (root only), unless it exists. */
export function ensureDebianBase(engine, log = console.log, name = DEBIAN_BASE) {
  if (spawnSync(engine, ["image", "inspect", name], { stdio: "ignore" }).status === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`${name} is missing and only root can make it (debootstrap): run this as root once`);
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-rootfs-"));
  try {
    log(`making ${name} with debootstrap (a few minutes)`);
    execFileSync("debootstrap", ["--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm", dir, aptMirror()], { stdio: ["ignore", "ignore", "inherit"] });
    for (const d of ["var/cache/apt/archives", "var/lib/apt/lists"]) for (const f of readdirSync(join(dir, d))) if (f !== "partial" && f !== "lock") rmSync(join(dir, d, f), { recursive: true, force: true });
    execFileSync("sh", ["-c", `tar -C "$1" -c . | "$2" import --change 'CMD ["/bin/bash"]' - "$3"`, "sh", dir, engine, name], { stdio: ["ignore", "ignore", "inherit"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A build context holding python_workers/ only (the files packageFiles lists). */
function stagePackage(files) {
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-ctx-"));
  for (const f of files) cpSync(join(root, f), join(dir, f));
  return dir;
}

/**
 * Builds what is missing or stale; returns each image with its digest and whether it was built.
 * opts: engine, tag, registry, platform, base (cuda|debian|IMAGE), wheels, push, force, dryRun, log.
 */
export function buildImages(opts) {
  const log = opts.log ?? console.log;
  const engine = opts.engine ?? "docker";
  if (!["docker", "podman"].includes(engine)) throw new Error(`--engine must be docker or podman, not ${engine}`);
  const local = opts.base === "debian";
  const baseImage = local ? DEBIAN_BASE : !opts.base || opts.base === "cuda" ? CUDA_BASE : opts.base;
  // A local build uses what this machine's pip uses: its wheels (a CPU torch) and CA bundle.
  const pipHere = local ? pipConfig() : { wheels: [] };
  const wheels = opts.wheels ?? pipHere.wheels;
  const caBundle = opts["ca-bundle"] ?? pipHere.caBundle;
  if ((wheels.length || caBundle) && engine !== "podman") throw new Error("--wheels and --ca-bundle mount files into the build, which needs --engine podman (docker build mounts no volumes)");
  const kinds = workerKinds();
  const plan = buildPlan({ engine, tag: opts.tag ?? "dev", registry: opts.registry, platform: opts.platform ?? "linux/amd64", kinds, variantList: variants(kinds), baseImage, wheels, caBundle, trainerExtras: local ? "" : undefined, orchestrator: !local });
  const files = packageFiles();
  const packageDigest = sha(...files.flatMap((f) => [f, readFileSync(join(root, f))]));
  if (local && !opts.dryRun) ensureDebianBase(engine, log);
  const parentId = (img) => spawnSync(engine, ["image", "inspect", "--format", "{{.Id}}", img], { encoding: "utf8" }).stdout?.trim() ?? "";
  const hashes = contentHashes(plan, {
    readText: (f) => readFileSync(join(root, f), "utf8"),
    packageDigest,
    // The base's own parent and wheels: a remade Debian root or another torch wheel rebuilds it.
    extra: { [plan[0].image]: sha(opts.dryRun ? baseImage : parentId(baseImage) || baseImage, wheelListing(wheels)) },
  });
  const results = [];
  const replaced = [];
  let ctx;
  try {
    plan.forEach((step, i) => {
      const argv = [...step.argv, "--label", `${HASH_LABEL}=${hashes[i]}`];
      if (!opts.force && !opts.dryRun && labelOf(engine, step.image) === hashes[i]) {
        results.push({ image: step.image, digest: imageDigest(engine, step.image), built: false });
        log(`${step.image} is up to date`);
        return;
      }
      if (step.context === "package") ctx ??= opts.dryRun ? "<python_workers>" : stagePackage(files);
      argv.push(step.context === "package" ? ctx : ".");
      log(argv.join(" "));
      if (opts.dryRun) return void results.push({ image: step.image, argv, built: false });
      const before = parentId(step.image);
      if (before) replaced.push(before);
      const t0 = Date.now();
      // The engine's output to stderr: stdout is only "image digest" lines.
      execFileSync(argv[0], argv.slice(1), { cwd: root, stdio: ["ignore", 2, 2] });
      if (opts.push) execFileSync(engine, ["push", step.image], { stdio: ["ignore", 2, 2] });
      results.push({ image: step.image, digest: imageDigest(engine, step.image), built: true, seconds: (Date.now() - t0) / 1000 });
      log(`${step.image} built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    });
  } finally {
    if (ctx && !opts.dryRun) rmSync(ctx, { recursive: true, force: true });
  }
  // The images these replaced, newest first so that children go before their base: removed
  // unless something still uses them (a container, another tag), so rebuilds do not pile up.
  for (const id of replaced.reverse()) if (!results.some((r) => r.digest && parentId(r.image) === id)) spawnSync(engine, ["rmi", id], { stdio: "ignore" });
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      engine: { type: "string", default: process.env.PDS_DPO_ENGINE ?? "docker" },
      tag: { type: "string", default: "dev" },
      registry: { type: "string" },
      push: { type: "boolean", default: false },
      platform: { type: "string", default: "linux/amd64" },
      base: { type: "string", default: "cuda" },
      wheels: { type: "string", multiple: true },
      "ca-bundle": { type: "string" },
      force: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
    },
  });
  try {
    const results = buildImages({ ...values, dryRun: values["dry-run"], log: (m) => console.error(m) });
    for (const r of results) if (r.digest) console.log(`${r.image} ${r.digest}`);
  } catch (e) {
    console.error(`images: ${e.message.split("\n")[0]}`);
    process.exit(e.status ? 1 : 2);
  }
}
