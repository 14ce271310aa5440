import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { buildCommands, workerKinds } from "../../scripts/build-images.mjs";

describe("npm run images", () => {
  it("builds the base, then every kind's image on it", () => {
    expect(workerKinds()).toEqual(["dpo-trainer", "evaluator", "image-generator", "image-scorer", "responder", "response-scorer"]);
    const cmds = buildCommands({ tag: "1.0", registry: "reg.example/", push: true, platform: "linux/amd64", kinds: ["image-generator"] }) as { argv: string[]; image: string }[];
    expect(cmds).toEqual([
      { argv: ["docker", "buildx", "build", "--platform", "linux/amd64", "-f", "docker/base.Dockerfile", "-t", "reg.example/pds-dpo-worker-base:1.0", "--push", "."], image: "reg.example/pds-dpo-worker-base:1.0" },
      {
        argv: ["docker", "buildx", "build", "--platform", "linux/amd64", "-f", "docker/image-generator.Dockerfile", "--build-arg", "BASE_IMAGE=reg.example/pds-dpo-worker-base:1.0", "-t", "reg.example/pds-dpo-image-generator:1.0", "--push", "."],
        image: "reg.example/pds-dpo-image-generator:1.0",
      },
      {
        argv: ["docker", "buildx", "build", "--platform", "linux/amd64", "-f", "docker/orchestrator.Dockerfile", "-t", "reg.example/pds-dpo-orchestrator:1.0", "--push", "."],
        image: "reg.example/pds-dpo-orchestrator:1.0",
      },
    ]);
  });
});
