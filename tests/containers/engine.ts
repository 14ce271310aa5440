// The container tests' engine: podman with this directory's containers.conf (the sandbox's
// two settings), and the worker images built once per test session on the Debian base.
// Every container test file calls ensureImages() in its beforeAll: the first builds what is
// missing or stale under a lock, the others wait for it, then find every image up to date.
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { ROOT } from "../helpers.js";

export const ENGINE = "podman";
export const CONTAINERS_CONF = join(import.meta.dirname, "containers.conf");
/** What a CLI run (or this process's DockerRuntime) needs to use the test engine. */
export const ENGINE_ENV = { PDS_DPO_ENGINE: ENGINE, CONTAINERS_CONF };
Object.assign(process.env, ENGINE_ENV);

/** The tag the test images carry (configs/tiny-containers.yaml names them). */
export const TAG = "dev";
export const image = (name: string) => `pds-dpo-${name}:${TAG}`;

const LOCK = join(tmpdir(), "pdsdpo-images.lock");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lockHolderAlive(): boolean {
  try {
    const pid = Number(readFileSync(LOCK, "utf8"));
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: alive under another user; anything else (no file, no process): not held.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Builds the worker images if needed (once per session, whichever test file comes first); returns image -> digest. */
export async function ensureImages(): Promise<Map<string, string>> {
  mkdirSync(tmpdir(), { recursive: true });
  for (;;) {
    try {
      closeSync(openSync(LOCK, "wx"));
      writeFileSync(LOCK, String(process.pid));
      break;
    } catch {
      // Held: wait for its builder, or take over a lock whose builder died.
      if (!lockHolderAlive() && Date.now() - statSync(LOCK, { throwIfNoEntry: false })!.mtimeMs > 2000) rmSync(LOCK, { force: true });
      await sleep(1000);
    }
  }
  try {
    const t0 = Date.now();
    // `npm run images` itself, in a child (a build takes minutes on a fresh machine).
    const r = await execa("node", ["scripts/build-images.mjs", "--engine", ENGINE, "--base", "debian", "--tag", TAG], { cwd: ROOT, reject: false, env: ENGINE_ENV, stdout: "pipe", stderr: "pipe", all: true });
    if (r.exitCode !== 0) throw new Error(`npm run images failed (exit ${r.exitCode}): ${r.all?.split("\n").slice(-15).join("\n")}`);
    const built = r.stderr.split("\n").filter((l) => / built in /.test(l));
    if (built.length) console.log(`container tests: images built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${built.join("; ")})`);
    return new Map(r.stdout.split("\n").filter(Boolean).map((l) => l.split(" ") as [string, string]));
  } finally {
    rmSync(LOCK, { force: true });
  }
}

/** Names of the worker containers that exist (running or not), optionally of one owner. */
export function workerContainers(owner?: string): string[] {
  const filter = owner ? `label=pdsdpo.owner=${owner}` : "label=pdsdpo.worker=true";
  return execFileSync(ENGINE, ["ps", "-a", "--filter", filter, "--format", "{{.Names}}"], { encoding: "utf8" }).split("\n").filter(Boolean);
}

/** The manifest digest of a local image (what the docker runtime pins). */
export function digestOf(img: string): string {
  const ref = execFileSync(ENGINE, ["image", "inspect", "--format", "{{index .RepoDigests 0}}", img], { encoding: "utf8" }).trim();
  return ref.slice(ref.indexOf("@") + 1);
}
