#!/usr/bin/env node
// Builds and tags the worker images with docker buildx, then prints each image's digest.
//   npm run images -- [--tag TAG] [--registry REG] [--push] [--platform linux/amd64] [--dry-run]
// The base image is built first; every kind's image is built on it (docker/<kind>.Dockerfile);
// then the orchestrator's (docker/orchestrator.Dockerfile, Node only), which `k8s render` runs.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Pure: the docker commands (argv arrays) that build every image. */
export function buildCommands({ tag, registry, push, platform, kinds }) {
  const name = (n) => `${registry ? `${registry.replace(/\/$/, "")}/` : ""}pds-dpo-${n}:${tag}`;
  const output = push ? ["--push"] : ["--load"];
  const base = name("worker-base");
  return [
    ["docker", "buildx", "build", "--platform", platform, "-f", "docker/base.Dockerfile", "-t", base, ...output, "."],
    ...kinds.map((k) => ["docker", "buildx", "build", "--platform", platform, "-f", `docker/${k}.Dockerfile`, "--build-arg", `BASE_IMAGE=${base}`, "-t", name(k), ...output, "."]),
    ["docker", "buildx", "build", "--platform", platform, "-f", "docker/orchestrator.Dockerfile", "-t", name("orchestrator"), ...output, "."],
  ].map((argv) => ({ argv, image: argv[argv.indexOf("-t") + 1] }));
}

export function workerKinds() {
  return readdirSync(join(root, "docker"))
    .filter((f) => f.endsWith(".Dockerfile") && f !== "base.Dockerfile" && f !== "orchestrator.Dockerfile")
    .map((f) => f.replace(/\.Dockerfile$/, ""))
    .sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { tag: { type: "string", default: "dev" }, registry: { type: "string" }, push: { type: "boolean", default: false }, platform: { type: "string", default: "linux/amd64" }, "dry-run": { type: "boolean", default: false } },
  });
  for (const { argv, image } of buildCommands({ ...values, kinds: workerKinds() })) {
    console.log(argv.join(" "));
    if (values["dry-run"]) continue;
    execFileSync(argv[0], argv.slice(1), { cwd: root, stdio: "inherit" });
    const digest = execFileSync("docker", ["image", "inspect", "--format", "{{if .RepoDigests}}{{index .RepoDigests 0}}{{else}}{{.Id}}{{end}}", image], { cwd: root }).toString().trim();
    console.log(`${image} ${digest}`);
  }
}
