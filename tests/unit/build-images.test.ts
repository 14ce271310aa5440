import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { buildPlan, contentHashes, packageFiles, variants, workerKinds } from "../../scripts/build-images.mjs";

type Step = { image: string; parent: string | null; file: string; argv: string[]; context: string };

describe("npm run images", () => {
  it("builds the base, then every kind's image on it, the variants on their kind's, then the orchestrator", () => {
    expect(workerKinds()).toEqual(["dpo-trainer", "evaluator", "image-generator", "image-scorer", "responder", "response-scorer"]);
    expect(variants()).toEqual([{ name: "responder-ftfy", kind: "responder", file: "docker/variants/responder-ftfy.Dockerfile" }]);
    const plan = buildPlan({ tag: "1.0", registry: "reg.example/", platform: "linux/amd64", kinds: ["image-generator"], variantList: [], baseImage: "cuda:1", orchestrator: true }) as Step[];
    expect(plan.map((s) => s.argv)).toEqual([
      ["docker", "build", "--platform", "linux/amd64", "-f", "docker/base.Dockerfile", "--build-arg", "BASE_IMAGE=cuda:1", "-t", "reg.example/pds-dpo-worker-base:1.0"],
      ["docker", "build", "--platform", "linux/amd64", "-f", "docker/image-generator.Dockerfile", "--build-arg", "BASE_IMAGE=reg.example/pds-dpo-worker-base:1.0", "-t", "reg.example/pds-dpo-image-generator:1.0"],
      ["docker", "build", "--platform", "linux/amd64", "-f", "docker/orchestrator.Dockerfile", "-t", "reg.example/pds-dpo-orchestrator:1.0"],
    ]);
    expect(plan.map((s) => s.context)).toEqual(["package", "package", "repo"]);
  });

  it("a local podman build mounts pip's wheels and CA bundle read-only into every build, and adds no DeepSpeed", () => {
    const plan = buildPlan({ engine: "podman", tag: "dev", platform: "linux/amd64", kinds: ["dpo-trainer"], variantList: [{ name: "dpo-trainer-x", kind: "dpo-trainer", file: "docker/variants/x.Dockerfile" }], baseImage: "pds-dpo-debian-base:bookworm", wheels: ["/opt/wheels"], caBundle: "/etc/ca.crt", trainerExtras: "", orchestrator: false }) as Step[];
    expect(plan.map((s) => s.image)).toEqual(["pds-dpo-worker-base:dev", "pds-dpo-dpo-trainer:dev", "pds-dpo-dpo-trainer-x:dev"]);
    for (const s of plan) {
      expect(s.argv.slice(0, 5)).toEqual(["podman", "build", "--platform", "linux/amd64", "--format"]);
      expect(s.argv.join(" ")).toContain("--build-arg PIP_FIND_LINKS=/opt/wheels --build-arg PIP_CERT=/etc/pds-dpo-build-ca.crt --volume /opt/wheels:/opt/wheels:ro --volume /etc/ca.crt:/etc/pds-dpo-build-ca.crt:ro");
    }
    expect(plan[1]!.argv).toContain("TRAINER_EXTRAS=");
    expect(plan[2]!.argv).toContain("KIND_IMAGE=pds-dpo-dpo-trainer:dev");
    expect(plan[2]!.parent).toBe("pds-dpo-dpo-trainer:dev");
  });

  it("content hashes: the same inputs give the same hashes; a package or Dockerfile change reaches every image built on it", () => {
    const plan = buildPlan({ tag: "dev", platform: "linux/amd64", kinds: ["evaluator", "responder"], baseImage: "b", orchestrator: false }) as Step[];
    const text = (over: Record<string, string> = {}) => (f: string) => over[f] ?? `text of ${f}`;
    const h0 = contentHashes(plan, { readText: text(), packageDigest: "p1" }) as string[];
    expect(contentHashes(plan, { readText: text(), packageDigest: "p1" })).toEqual(h0);
    expect(new Set(h0).size).toBe(3);
    // The package's code: every image changes.
    const h1 = contentHashes(plan, { readText: text(), packageDigest: "p2" }) as string[];
    h1.forEach((h, i) => expect(h).not.toBe(h0[i]));
    // One kind's Dockerfile: that image only.
    const h2 = contentHashes(plan, { readText: text({ "docker/responder.Dockerfile": "changed" }), packageDigest: "p1" }) as string[];
    expect(h2.map((h, i) => h === h0[i])).toEqual([true, true, false]);
    // The base's own parent (another Debian root or torch wheel): the base and so every kind.
    const h3 = contentHashes(plan, { readText: text(), packageDigest: "p1", extra: { "pds-dpo-worker-base:dev": "other root" } }) as string[];
    h3.forEach((h, i) => expect(h).not.toBe(h0[i]));
  });

  it("the build context holds the workers' package without tests, caches or egg-info", () => {
    const files = packageFiles() as string[];
    expect(files).toContain("python_workers/pyproject.toml");
    expect(files).toContain("python_workers/pds_dpo_workers/server.py");
    expect(files.filter((f) => /__pycache__|\.pyc$|egg-info|python_workers\/tests\//.test(f))).toEqual([]);
    // A tool's hidden cache (pytest's, written while the images build beside it) is not part of it.
    const tree = mkdtempSync(join(tmpdir(), "pdsdpo-pkg-"));
    try {
      for (const f of ["python_workers/pyproject.toml", "python_workers/pkg/a.py", "python_workers/.pytest_cache/v/cache/nodeids", "python_workers/pkg/.mypy_cache/x.json", "python_workers/pkg/__pycache__/a.pyc"]) {
        mkdirSync(dirname(join(tree, f)), { recursive: true });
        writeFileSync(join(tree, f), "x");
      }
      expect(packageFiles(tree)).toEqual(["python_workers/pkg/a.py", "python_workers/pyproject.toml"]);
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it("bad options: one line naming the option, exit 2", () => {
    const run = (...args: string[]) => spawnSync("node", ["scripts/build-images.mjs", ...args], { encoding: "utf8" });
    const engine = run("--engine", "rkt", "--dry-run");
    expect([engine.status, engine.stderr.trim()]).toEqual([2, "images: --engine must be docker or podman, not rkt"]);
    const wheels = run("--engine", "docker", "--wheels", "/tmp", "--dry-run");
    expect(wheels.status).toBe(2);
    expect(wheels.stderr.trim()).toBe("images: --wheels and --ca-bundle mount files into the build, which needs --engine podman (docker build mounts no volumes)");
    // A dry run prints the commands and builds nothing.
    expect(execFileSync("node", ["scripts/build-images.mjs", "--dry-run"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })).toBe("");
  });
});
