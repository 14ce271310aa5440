// The docker runtime on a real engine (podman here): the conformance suite the local and remote
// runtimes pass, against the worker image of the image scorer, and no container left after it.
import { beforeAll, describe, expect, it } from "vitest";
import { CONTAINER_OWNER, DockerRuntime } from "../../src/workers/docker-runtime.js";
import { runRuntimeConformance } from "../conformance/runtime.case.js";
import { until } from "../helpers.js";
import { ENGINE, ensureImages, image, workerContainers } from "./engine.js";

// A fresh machine builds every image first (minutes: see README, Worker images); cached, seconds.
beforeAll(ensureImages, 40 * 60_000);

runRuntimeConformance(`docker (${ENGINE})`, () => new DockerRuntime(ENGINE), { type: "docker", image: image("image-scorer"), device: "cpu", cpu_threads: 1 });

describe(`docker runtime on ${ENGINE}`, () => {
  it("an image that is not here is named, with how to build it", async () => {
    await expect(new DockerRuntime(ENGINE).pin("pds-dpo-no-such-kind:dev")).rejects.toThrow(/^docker image pds-dpo-no-such-kind:dev is not available here \(podman image inspect: .*\); pull or build it first \(npm run images\)$/);
  });

  it("leaves no container of this process behind, stopped, killed or failed", async () => {
    // A killed worker's container is removed beside the kill: give the engine a few seconds.
    await until(() => workerContainers(CONTAINER_OWNER).length === 0, 10_000);
    expect(workerContainers(CONTAINER_OWNER)).toEqual([]);
  });
});
