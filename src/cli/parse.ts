// Pure argv parsing: `parseCLI(argv)` is unit-tested without spawning a process.
import type { RenderOptions } from "../k8s/render.js";
import { parseArgs } from "node:util";
import { STAGES, type StageName } from "../config/schema.js";
import { UsageError } from "../errors.js";
import { DATASET_FORMATS, isDatasetFormat, type DatasetFormat } from "../dataset/formats.js";

export type Command =
  | { command: "run"; config: string; store: string; runId?: string; until?: StageName; noCache: boolean; json: boolean; verbose: boolean }
  | { command: "resume"; runId: string; store: string; json: boolean; verbose: boolean }
  | { command: "report"; runId: string; store: string; verbose: boolean }
  | { command: "replay"; manifest: string; store: string; tolerance?: string; json: boolean; verbose: boolean }
  | { command: "k8s-render"; config: string; out: string; render: Partial<RenderOptions>; verbose: boolean }
  | { command: "validate"; config: string; verbose: boolean }
  | { command: "plan"; config: string; store: string; json: boolean; verbose: boolean }
  | { command: "workers-check"; config: string; store: string; json: boolean; verbose: boolean }
  | { command: "dataset-convert"; input: string; from: DatasetFormat; to: DatasetFormat; out: string; imagesFrom?: string; verbose: boolean }
  | { command: "prompts-import"; t2i: string; instructions: string; ids?: string; out: string; verbose: boolean }
  | { command: "dataset-export"; runId: string; store: string; format: "hf"; out?: string; license?: string; verbose: boolean }
  | { command: "schema" }
  | { command: "runs"; store: string; json: boolean; verbose: boolean }
  | { command: "show"; runId: string; store: string; json: boolean; verbose: boolean }
  | { command: "diff"; runA: string; runB: string; store: string; json: boolean; verbose: boolean }
  | { command: "call"; config: string; worker: string; method: string; request: string; store: string; verbose: boolean }
  | { command: "help" }
  | { command: "version" };

export const USAGE = `usage: orchestrate <command> [options]

commands:
  run <experiment.yaml> [--store DIR] [--run-id ID] [--until STAGE] [--no-cache] [--json]
                                      --no-cache computes every item again (the journal still records them)
  resume <run-id> [--store DIR] [--json]   finish an interrupted or failed run
  report <run-id> [--store DIR]       (re)write report/index.html and report/diagnostics.json
  replay <manifest.json> [--store DIR] [--tolerance score=1e-4,loss=0.05,metric=0.01,pixel=2,psnr=40]
                                      rerun from a manifest and compare every hash; exit 3 on a mismatch
  validate <experiment.yaml>          check the config and the files it names; exit 2 on problems
  plan <experiment.yaml> [--store DIR] [--json]
                                      stages, items, cache hits, seeds and workers; nothing runs
  workers check <experiment.yaml>     start each worker, print its Describe, stop it
  k8s render <experiment.yaml> [--out DIR] [--namespace NS] [--node-selector K=V ...]
             [--registry REG] [--tag TAG] [--storage-class SC] [--store-size 500Gi] [--queue Q]
                                      the store's volume claim, a Deployment and headless
                                      Service per worker, and a Job that runs the experiment
  dataset convert <input> --from FORMAT --to FORMAT --out FILE [--images-from DIR]
                                      a preference dataset in another format (trl, llava,
                                      llama-factory, ms-swift); exit 2 naming each bad row
  dataset export --format hf <run-id> [--store DIR] [--out DIR] [--license ID]
                                      a run's pairs as a Hugging Face datasets dataset
                                      (parquet with the images, a dataset card) in dataset/hf/
  prompts import --t2i FILE --instructions FILE [--ids FILE] --out prompts.jsonl
                                      the authors' aligned prompt files as a prompts file
  runs [--store DIR] [--json]         one line per run: status, start, duration, stages, pairs, metrics
  show <run-id> [--store DIR] [--json]
                                      a run's manifest as a summary
  diff <run-a> <run-b> [--store DIR] [--json]
                                      what differs between two runs: config, workers, stages, hashes, metrics
  call <experiment.yaml> <worker> <Service.Method> [--json '{...}'] [--store DIR]
                                      start (or reach) one worker and call any RPC with a JSON
                                      request (default {}); each response as a JSON line
  schema                              the experiment.yaml JSON Schema (for editors)

options:
  --store DIR     store root (default .pds-dpo)
  --json          events as JSON lines on stdout
  --verbose       stack traces on errors
  --help, --version`;

const OPTIONS = {
  store: { type: "string" },
  "run-id": { type: "string" },
  until: { type: "string" },
  json: { type: "boolean", default: false },
  "no-cache": { type: "boolean", default: false },
  verbose: { type: "boolean", default: false },
  out: { type: "string" },
  tolerance: { type: "string" },
  namespace: { type: "string" },
  "node-selector": { type: "string", multiple: true },
  registry: { type: "string" },
  tag: { type: "string" },
  "storage-class": { type: "string" },
  "store-size": { type: "string" },
  queue: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  "images-from": { type: "string" },
  t2i: { type: "string" },
  instructions: { type: "string" },
  ids: { type: "string" },
  format: { type: "string" },
  license: { type: "string" },
  help: { type: "boolean", default: false },
  version: { type: "boolean", default: false },
} as const;

const CALL_USAGE = "call <experiment.yaml> <worker> <Service.Method> [--json '{...}'] [--store DIR]";

const CONVERT_USAGE = `dataset convert <input> --from ${DATASET_FORMATS.join("|")} --to FORMAT --out FILE [--images-from DIR]`;
const EXPORT_USAGE = "dataset export --format hf <run-id> [--store DIR] [--out DIR] [--license ID]";
const IMPORT_USAGE = "prompts import --t2i FILE --instructions FILE [--ids FILE] --out prompts.jsonl";

const K8S_USAGE = "k8s render <experiment.yaml> [--out DIR] [--namespace NS] [--node-selector K=V] [--registry REG] [--tag TAG] [--storage-class SC] [--store-size SIZE] [--queue Q]";

/**
 * `call`'s `--json` takes the request (`--json '{...}'` or `--json={...}`), where every other
 * command's is a flag: taken out of argv before the common parse.
 */
function takeCallRequest(argv: string[]): { argv: string[]; request?: string } {
  const takesValue = (a: string) => (OPTIONS as Record<string, { type: string }>)[a.slice(2)]?.type === "string";
  let first: string | undefined;
  for (let i = 0; i < argv.length && first === undefined; i++) {
    if (!argv[i]!.startsWith("-")) first = argv[i];
    else if (takesValue(argv[i]!)) i++;
  }
  if (first !== "call") return { argv };
  const rest: string[] = [];
  let request: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith("--json=")) request = a.slice("--json=".length);
    else if (a === "--json") {
      if (i + 1 >= argv.length) throw new UsageError("--json needs the request, a JSON object: --json '{...}'");
      request = argv[++i]!;
    } else rest.push(a);
  }
  return { argv: rest, request };
}

export function parseCLI(argvIn: string[]): Command {
  const { argv, request } = takeCallRequest(argvIn);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]!);
  }
  const { values, positionals } = parsed;
  if (values.version) return { command: "version" };
  if (values.help || positionals.length === 0) return { command: "help" };
  const [cmd, ...rest] = positionals;
  const store = values.store ?? ".pds-dpo";
  const verbose = values.verbose;
  const needConfig = (args: string[], usage: string): string => {
    if (args.length !== 1) throw new UsageError(`usage: orchestrate ${usage}`);
    return args[0]!;
  };
  const noRunFlags = (name: string) => {
    if (values["run-id"] !== undefined || values.until !== undefined || values["no-cache"]) throw new UsageError(`${name} takes no --run-id, --until or --no-cache`);
  };
  switch (cmd) {
    case "run": {
      const config = needConfig(rest, "run <experiment.yaml> [--store DIR] [--run-id ID] [--until STAGE] [--no-cache] [--json]");
      let until: StageName | undefined;
      if (values.until !== undefined) {
        if (!(STAGES as readonly string[]).includes(values.until)) throw new UsageError(`--until must be one of ${STAGES.join(", ")}, not '${values.until}'`);
        until = values.until as StageName;
      }
      return { command: "run", config, store, runId: values["run-id"], until, noCache: values["no-cache"], json: values.json, verbose };
    }
    case "resume": {
      noRunFlags("resume");
      if (rest.length !== 1) throw new UsageError("usage: orchestrate resume <run-id> [--store DIR] [--json]");
      return { command: "resume", runId: rest[0]!, store, json: values.json, verbose };
    }
    case "replay": {
      noRunFlags("replay");
      if (rest.length !== 1) throw new UsageError("usage: orchestrate replay <manifest.json> [--store DIR] [--tolerance ...]");
      return { command: "replay", manifest: rest[0]!, store, tolerance: values.tolerance, json: values.json, verbose };
    }
    case "report": {
      noRunFlags("report");
      if (rest.length !== 1) throw new UsageError("usage: orchestrate report <run-id> [--store DIR]");
      return { command: "report", runId: rest[0]!, store, verbose };
    }
    case "validate":
      noRunFlags("validate");
      return { command: "validate", config: needConfig(rest, "validate <experiment.yaml>"), verbose };
    case "plan":
      noRunFlags("plan");
      return { command: "plan", config: needConfig(rest, "plan <experiment.yaml>"), store, json: values.json, verbose };
    case "k8s": {
      noRunFlags("k8s render");
      if (rest[0] !== "render") throw new UsageError(`usage: orchestrate ${K8S_USAGE}`);
      const nodeSelector: Record<string, string> = {};
      for (const kv of values["node-selector"] ?? []) {
        const [k, v] = kv.split("=");
        if (!k || v === undefined) throw new UsageError(`--node-selector takes key=value, not '${kv}'`);
        nodeSelector[k] = v;
      }
      const render: Partial<RenderOptions> = {
        nodeSelector,
        ...(values.namespace ? { namespace: values.namespace } : {}),
        ...(values.registry ? { registry: values.registry } : {}),
        ...(values.tag ? { tag: values.tag } : {}),
        ...(values["storage-class"] ? { storageClass: values["storage-class"] } : {}),
        ...(values["store-size"] ? { storeSize: values["store-size"] } : {}),
        ...(values.queue ? { queue: values.queue } : {}),
      };
      return { command: "k8s-render", config: needConfig(rest.slice(1), K8S_USAGE), out: values.out ?? "k8s", render, verbose };
    }
    case "workers": {
      noRunFlags("workers check");
      if (rest[0] !== "check") throw new UsageError("usage: orchestrate workers check <experiment.yaml>");
      return { command: "workers-check", config: needConfig(rest.slice(1), "workers check <experiment.yaml>"), store, json: values.json, verbose };
    }
    case "dataset": {
      noRunFlags(`dataset ${rest[0] ?? "convert"}`);
      if (rest[0] === "export") {
        if (rest.length !== 2) throw new UsageError(`usage: orchestrate ${EXPORT_USAGE}`);
        if (values.format !== "hf") throw new UsageError(`dataset export needs --format hf (the one export format; dataset convert writes the others)\nusage: orchestrate ${EXPORT_USAGE}`);
        return { command: "dataset-export", runId: rest[1]!, store, format: "hf", out: values.out, license: values.license, verbose };
      }
      if (rest[0] !== "convert" || rest.length !== 2) throw new UsageError(`usage: orchestrate ${CONVERT_USAGE}`);
      const format = (flag: "from" | "to"): DatasetFormat => {
        const v = values[flag];
        if (v === undefined) throw new UsageError(`dataset convert needs --${flag} (${DATASET_FORMATS.join(", ")})\nusage: orchestrate ${CONVERT_USAGE}`);
        if (!isDatasetFormat(v)) throw new UsageError(`--${flag} must be one of ${DATASET_FORMATS.join(", ")}, not '${v}'`);
        return v;
      };
      const from = format("from");
      const to = format("to");
      if (values.out === undefined) throw new UsageError(`dataset convert needs --out FILE\nusage: orchestrate ${CONVERT_USAGE}`);
      return { command: "dataset-convert", input: rest[1]!, from, to, out: values.out, imagesFrom: values["images-from"], verbose };
    }
    case "prompts": {
      noRunFlags("prompts import");
      if (rest[0] !== "import" || rest.length !== 1) throw new UsageError(`usage: orchestrate ${IMPORT_USAGE}`);
      for (const flag of ["t2i", "instructions", "out"] as const) {
        if (values[flag] === undefined) throw new UsageError(`prompts import needs --${flag} FILE\nusage: orchestrate ${IMPORT_USAGE}`);
      }
      return { command: "prompts-import", t2i: values.t2i!, instructions: values.instructions!, ids: values.ids, out: values.out!, verbose };
    }
    case "schema":
      noRunFlags("schema");
      if (rest.length !== 0) throw new UsageError("usage: orchestrate schema");
      return { command: "schema" };
    case "runs":
      noRunFlags("runs");
      if (rest.length !== 0) throw new UsageError("usage: orchestrate runs [--store DIR] [--json]");
      return { command: "runs", store, json: values.json, verbose };
    case "show":
      noRunFlags("show");
      if (rest.length !== 1) throw new UsageError("usage: orchestrate show <run-id> [--store DIR] [--json]");
      return { command: "show", runId: rest[0]!, store, json: values.json, verbose };
    case "diff":
      noRunFlags("diff");
      if (rest.length !== 2) throw new UsageError("usage: orchestrate diff <run-a> <run-b> [--store DIR] [--json]");
      return { command: "diff", runA: rest[0]!, runB: rest[1]!, store, json: values.json, verbose };
    case "call":
      noRunFlags("call");
      if (rest.length !== 3) throw new UsageError(`usage: orchestrate ${CALL_USAGE}`);
      return { command: "call", config: rest[0]!, worker: rest[1]!, method: rest[2]!, request: request ?? "{}", store, verbose };
    default:
      throw new UsageError(`unknown command '${cmd}'\n${USAGE}`);
  }
}
