import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { completeExperiment } from "../../config/load.js";
import { ExperimentSchema, STAGES, type StageName } from "../../config/schema.js";
import { ReplayMismatchError, UsageError } from "../../errors.js";
import { EventBus } from "../../events/bus.js";
import { firstDifference, fingerprintMismatch, parseTolerance } from "../../manifest/compare.js";
import { MANIFEST_SCHEMA, type Manifest } from "../../manifest/types.js";
import { runExperiment } from "../../pipeline/run.js";
import { DockerRuntime } from "../../workers/docker-runtime.js";
import { ContentStore } from "../../store/cas.js";
import { RECORDS_DIR } from "../../store/records.js";
import { decodePng, pixelDistance } from "../../store/png.js";
import { reporterFor, type Output } from "../output.js";

const object = z.record(z.string(), z.unknown());
/** What replay reads of a manifest before it runs anything (and compares after). */
const ReplayableManifest = z.looseObject({
  run_id: z.string().min(1),
  config: z.looseObject({ file: z.string().min(1), resolved: object }),
  inputs: z.looseObject({ prompts: z.looseObject({ sha256: z.string() }) }),
  workers: z.record(z.string(), object),
  stages: z.record(z.string(), object),
  artifacts: z.array(z.unknown()),
  outputs: object,
});

/** Pure: why a parsed JSON value is not a manifest replay can use, naming the first missing or wrong field. */
export function manifestProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "not a pds-dpo manifest (not a JSON object)";
  const schema = (value as { schema?: unknown }).schema;
  if (schema === undefined) return "not a pds-dpo manifest (no schema field)";
  if (schema === "pds-dpo/manifest@1") return "written by an older orchestrator (schema pds-dpo/manifest@1, its image records inside the manifest); replay it with that version";
  if (schema !== MANIFEST_SCHEMA) return `not a pds-dpo manifest (schema ${JSON.stringify(schema).slice(0, 80)}, not ${MANIFEST_SCHEMA})`;
  const parsed = ReplayableManifest.safeParse(value);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join(".");
  const missing = issue.code === "invalid_type" && valueAt(value, issue.path) === undefined;
  return missing ? `not a complete manifest: ${field} is missing` : `not a complete manifest: ${field}: ${issue.message.replace(/^Invalid input: /, "")}`;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let cur = value;
  for (const seg of path) cur = cur !== null && typeof cur === "object" ? (cur as Record<PropertyKey, unknown>)[seg] : undefined;
  return cur;
}

/** Answer texts of a run, from its dataset (for a readable text difference). */
function answerTexts(runDir: string): Map<string, string> {
  const texts = new Map<string, string>();
  const path = join(runDir, "dataset", "pairs.jsonl");
  if (!existsSync(path)) return texts;
  for (const line of readFileSync(path, "utf8").split("\n").filter(Boolean)) {
    for (const c of (JSON.parse(line) as { metadata: { candidates: { id: string; text: string }[] } }).metadata.candidates) texts.set(c.id, c.text);
  }
  return texts;
}

/** Reruns a run from its manifest (its resolved config, no cache) into a new run and compares every hash. */
export async function replayCommand(o: { manifest: string; store: string; tolerance?: string; json: boolean }, out: Output, signal: AbortSignal): Promise<number> {
  let tol;
  try {
    tol = parseTolerance(o.tolerance);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(o.manifest, "utf8"));
  } catch {
    throw new UsageError(`cannot read a manifest at ${o.manifest}`);
  }
  const problem = manifestProblem(value);
  if (problem) throw new UsageError(`${o.manifest}: ${problem}`);
  const before = value as Manifest;
  const cfg = before.config;
  const parsed = ExperimentSchema.safeParse(cfg.resolved);
  if (!parsed.success) throw new UsageError(`${o.manifest}: its config does not validate: ${parsed.error.issues[0]?.message}`);
  const loaded = completeExperiment(parsed.data, { file: cfg.file, baseDir: dirname(cfg.file), text: JSON.stringify(cfg.resolved) });
  const pinned = before.inputs?.prompts?.sha256;
  if (pinned && pinned !== loaded.promptsSha256) throw new UsageError(`the prompts file changed since run ${String(before.run_id)} (sha256 ${pinned.slice(0, 12)}, now ${loaded.promptsSha256.slice(0, 12)}); it cannot be replayed`);
  const stages = Object.keys(before.stages ?? {}).filter((s): s is StageName => (STAGES as readonly string[]).includes(s));
  const until = STAGES.filter((s) => stages.includes(s)).pop();

  // A container image that is no longer the one the run pinned is known before anything runs.
  for (const [name, w] of Object.entries(parsed.data.workers)) {
    const pinnedDigest = (before.workers?.[name]?.runtime as { image_digest?: unknown } | undefined)?.image_digest;
    if (w.runtime.type !== "docker" || typeof pinnedDigest !== "string") continue;
    const { digest } = await new DockerRuntime().pin(w.runtime.image).catch((e: Error) => {
      throw new UsageError(`replay cannot pin the original workers: worker '${name}': ${e.message}`);
    });
    if (digest !== pinnedDigest) throw new UsageError(`replay cannot pin the original workers: worker '${name}': image digest ${pinnedDigest} is pinned but ${w.runtime.image} is ${digest} here`);
  }

  const bus = new EventBus();
  bus.subscribe(reporterFor(out, o.json));
  const runId = `${String(before.run_id)}-replay-${Date.now().toString(36)}`;
  const result = await runExperiment({ configPath: cfg.file, loaded, storeRoot: resolve(o.store), runId, until, bus, signal, replayOf: String(before.run_id), cache: "off" });
  if (result.status !== "succeeded") throw result.error;
  const fp = fingerprintMismatch(before, result.manifest);
  if (fp) throw new UsageError(`replay cannot pin the original workers: ${fp}`);
  // The original run's own directory (the manifest may have been copied elsewhere).
  const origDir = [join(resolve(o.store), "runs", String(before.run_id)), dirname(resolve(o.manifest))].find((d) => existsSync(join(d, "dataset")) || existsSync(join(d, RECORDS_DIR)));
  const store = new ContentStore(resolve(o.store));
  const pixels = (sha: string) => {
    try {
      return decodePng(readFileSync(store.pathOf(sha)));
    } catch {
      return null;
    }
  };
  const images = (shaBefore: string, shaAfter: string) => {
    const [b, a] = [pixels(shaBefore), pixels(shaAfter)];
    return b && a ? pixelDistance(b, a) : null;
  };
  let diff;
  try {
    diff = firstDifference(before, result.manifest, tol, { texts: { before: origDir ? answerTexts(origDir) : new Map(), after: answerTexts(result.runDir) }, images, runDirs: { before: origDir ?? null, after: result.runDir } });
  } catch (e) {
    // A hand-edited manifest whose sections have other shapes than the run wrote.
    throw new UsageError(`${o.manifest}: its stage records cannot be compared (${(e as Error).message})`);
  }
  if (diff) throw new ReplayMismatchError(`replay ${runId} differs from ${String(before.run_id)}: first in stage ${diff.stage}, item ${diff.item}: ${diff.what}`);
  out.stdout(`replay ${runId} matches ${String(before.run_id)}: every hash equal\n`);
  return 0;
}
