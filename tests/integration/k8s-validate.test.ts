// `orchestrate k8s render` of the shipped configs through the real CLI, and every object
// validated against the Kubernetes OpenAPI schemas offline (kubernetes-validate, strict:
// unknown fields are errors).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { cli, ROOT, tempDir } from "../helpers.js";

const VALIDATE = join(ROOT, ".venv/bin/kubernetes-validate");
const validate = (file: string) => execa(VALIDATE, ["--strict", "--quiet", "-k", "1.33", file], { reject: false });

describe("k8s render", { timeout: 60_000 }, () => {
  for (const config of ["tiny.yaml", "pds-dpo-paper.yaml"]) {
    it(`${config}: exit 0, a Job, Deployments, Services and a PersistentVolumeClaim that pass strict schema validation`, async () => {
      const out = tempDir("pdsdpo-k8s-");
      const r = await cli(["k8s", "render", join(ROOT, "configs", config), "--out", out, "--registry", "reg.example", "--tag", "1.0"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const kinds = new Set(r.stdout.trim().split("\n").slice(0, -1).map((l) => l.split("/")[0]));
      expect([...kinds].sort()).toEqual(["ConfigMap", "Deployment", "Job", "PersistentVolumeClaim", "Service"]);
      const file = r.stdout.trim().split("\n").at(-1)!;
      const v = await validate(file);
      expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    });
  }

  it("the validation is strict: an unknown field fails it", async () => {
    const out = tempDir("pdsdpo-k8s-");
    const r = await cli(["k8s", "render", join(ROOT, "configs/tiny.yaml"), "--out", out]);
    const file = r.stdout.trim().split("\n").at(-1)!;
    writeFileSync(file, readFileSync(file, "utf8").replace("restartPolicy: Never", "restartPolicy: Never\n          restartPolcy: Never"));
    const v = await validate(file);
    expect(v.exitCode).not.toBe(0);
    expect(v.stdout + v.stderr).toMatch(/restartPolcy/);
  });
});
