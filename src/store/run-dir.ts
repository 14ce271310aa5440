// The run directory of DESIGN.md: <store>/runs/<run-id>/{manifest.json, events.jsonl, logs/, images/, ...}.
import { randomBytes } from "node:crypto";
import { existsSync, linkSync, copyFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { UsageError } from "../errors.js";

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function newRunId(name: string, now: Date, suffix = randomBytes(3).toString("hex")): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return `${stamp}-${name}-${suffix}`;
}

export class RunDir {
  readonly path: string;

  constructor(readonly storeRoot: string, readonly runId: string) {
    if (!RUN_ID.test(runId)) throw new UsageError(`bad run id '${runId}': use letters, digits, '.', '_' and '-'`);
    this.path = join(storeRoot, "runs", runId);
  }

  create(): void {
    if (existsSync(this.path)) throw new UsageError(`run ${this.runId} already exists in ${this.storeRoot}`);
    for (const sub of ["logs", "images"]) mkdirSync(join(this.path, sub), { recursive: true });
  }

  get manifestPath(): string {
    return join(this.path, "manifest.json");
  }
  get eventsPath(): string {
    return join(this.path, "events.jsonl");
  }
  logPath(worker: string): string {
    return join(this.path, "logs", `${worker}.log`);
  }
  imagePath(id: string): string {
    return join(this.path, "images", `${id}.png`);
  }
  rel(p: string): string {
    return relative(this.path, p);
  }

  /** Moves events.jsonl and manifest.json of an earlier attempt aside as *.attempt-<n>.*. */
  keepAttempt(): number {
    let n = 1;
    while (existsSync(join(this.path, `events.attempt-${n}.jsonl`))) n++;
    if (existsSync(this.eventsPath)) renameSync(this.eventsPath, join(this.path, `events.attempt-${n}.jsonl`));
    if (existsSync(this.manifestPath)) renameSync(this.manifestPath, join(this.path, `manifest.attempt-${n}.json`));
    return n;
  }

  /** A hard link to the store's copy where the filesystem allows, else a copy. */
  placeArtifact(casPath: string, dest: string): void {
    mkdirSync(dirname(dest), { recursive: true });
    if (existsSync(dest)) return;
    try {
      linkSync(casPath, dest);
    } catch {
      copyFileSync(casPath, dest);
    }
  }

  /** Write-then-rename, so a crash never leaves half a file. */
  writeAtomic(path: string, content: string): void {
    writeFileAtomic(path, content);
  }
}

/** Write-then-rename, so a crash never leaves half a file. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}
