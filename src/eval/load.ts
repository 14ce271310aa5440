// The benchmark files of an evaluate stage, read and checked (formats.ts) before any worker
// starts: at `validate` and again when a run starts. Each benchmark split becomes one
// evaluation of each model variant.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { benchmarkMaxNewTokens, benchmarkType, JUDGE_MAX_NEW_TOKENS, type BenchmarkConfig, type BenchmarkType, type EvaluateStageConfig } from "../config/schema.js";
import { checkBenchmark, type BenchImage, type FileData } from "./formats.js";

const abs = (baseDir: string, p: string) => (isAbsolute(p) ? p : join(baseDir, p));

/** One question file of a benchmark, ready to send. */
export interface BenchmarkSplit {
  benchmark: string;
  type: BenchmarkType;
  split: string;
  file: string;
  imageRoot: string;
  /** Reference files by role, absolute. */
  references: Record<string, string>;
  maxNewTokens: number;
  judge?: string;
  judgeMaxNewTokens: number;
  images: BenchImage[];
}

/** Pure: the files and directories a benchmark names, with their config keys (relative to the benchmark's entry). */
export function benchmarkFiles(b: BenchmarkConfig): { key: (string | number)[]; file: string; what: string }[] {
  const out: { key: (string | number)[]; file: string; what: string }[] = [];
  if (b.path) out.push({ key: ["path"], file: b.path, what: `${b.name} question file` });
  for (const [split, file] of Object.entries(b.splits ?? {})) out.push({ key: ["splits", split], file: file!, what: `${b.name} ${split} question file` });
  if (b.image_root) out.push({ key: ["image_root"], file: b.image_root, what: `${b.name} image directory` });
  for (const [role, file] of Object.entries(b.references ?? {})) out.push({ key: ["references", role], file, what: `${b.name} ${role} file` });
  return out;
}

/** Pure: the question files of a benchmark by split ("all" for a single path); none for a smoke-pope, built at run time. */
export function splitFiles(b: BenchmarkConfig): [string, string][] {
  return b.path ? [["all", b.path]] : Object.entries(b.splits ?? {}).map(([k, v]) => [k, v!]);
}

function read(file: string): FileData | undefined {
  try {
    return { file, data: readFileSync(file) };
  } catch {
    return undefined;
  }
}

/**
 * Reads and checks every benchmark with files (a missing file is left to the caller's
 * existence check); problems come with the key of the benchmark entry they belong to.
 */
export function loadBenchmarks(stage: EvaluateStageConfig, baseDir: string): { splits: BenchmarkSplit[]; issues: { index: number; key: (string | number)[]; message: string }[] } {
  const splits: BenchmarkSplit[] = [];
  const issues: { index: number; key: (string | number)[]; message: string }[] = [];
  stage.benchmarks.forEach((b, index) => {
    const type = benchmarkType(b)!;
    if (type === "smoke-pope") return;
    const references: Record<string, string> = {};
    const refs: Record<string, FileData> = {};
    let missing = false;
    for (const [role, f] of Object.entries(b.references ?? {})) {
      references[role] = abs(baseDir, f);
      const d = read(references[role]);
      if (d) refs[role] = d;
      else missing = true;
    }
    splitFiles(b).forEach(([split, f], i) => {
      const file = abs(baseDir, f);
      const key = b.path ? ["path"] : ["splits", split];
      const questions = read(file);
      if (!questions || missing) return;
      const imageRoot = b.image_root ? abs(baseDir, b.image_root) : dirname(file);
      const checked = checkBenchmark(type, questions, refs);
      // A problem is filed under the key of the file it names; reference problems once per benchmark, not once per split.
      for (const message of checked.issues) {
        const role = Object.keys(references).find((r) => message.startsWith(references[r]!));
        if (role) {
          if (i === 0) issues.push({ index, key: ["references", role], message });
        } else issues.push({ index, key, message });
      }
      if (checked.issues.length) return;
      const rootOk = existsSync(imageRoot) && statSync(imageRoot).isDirectory();
      const lost = rootOk ? checked.images.filter((im) => "path" in im && !existsSync(abs(imageRoot, im.path))) : [];
      if (lost.length) {
        const first = lost[0]! as { path: string };
        issues.push({ index, key: b.image_root ? ["image_root"] : key, message: `${b.name}: image ${abs(imageRoot, first.path)} not found${lost.length > 1 ? ` (and ${lost.length - 1} more of the questions' images)` : ""}` });
        return;
      }
      splits.push({ benchmark: b.name, type, split, file, imageRoot, references, maxNewTokens: benchmarkMaxNewTokens(b, stage.max_new_tokens), ...(b.judge ? { judge: b.judge } : {}), judgeMaxNewTokens: b.judge_max_new_tokens ?? JUDGE_MAX_NEW_TOKENS, images: checked.images });
    });
  });
  return { splits, issues };
}
