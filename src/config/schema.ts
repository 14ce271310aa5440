// The experiment.yaml schema. Strict everywhere: an unknown key is an error, so a typo
// never silently falls back to a default.
import { z } from "zod";

export const WORKER_KINDS = [
  "image-generator",
  "image-scorer",
  "responder",
  "response-scorer",
  "dpo-trainer",
  "evaluator",
] as const;
export type WorkerKindName = (typeof WORKER_KINDS)[number];

/** Items per RPC of a worker whose config sets no batch_size: the one place this default lives (workers take what they are sent). */
export const DEFAULT_BATCH_SIZE: Record<WorkerKindName, number> = {
  "image-generator": 4,
  "image-scorer": 16,
  responder: 8,
  "response-scorer": 16,
  "dpo-trainer": 1,
  evaluator: 8,
};

const positiveInt = z.number().int().positive();

/** `org/name@revision`: a hub reference, not a directory (a model option such as `tokenizer`). */
export function isHubRef(value: string): boolean {
  return /^[\w.-]+\/[\w.-]+@[\w./-]+$/.test(value);
}

export const ModelSchema = z
  .strictObject({
    source: z.enum(["tiny", "hf", "path"]),
    /** tiny: the builder's name (sd, clip-scorer, ...). */
    name: z.string().min(1).optional(),
    /** hf: hub id. */
    id: z.string().min(1).optional(),
    /** hf: pinned revision (commit sha or tag). */
    revision: z.string().min(1).optional(),
    /** path: a local model directory, relative to the config file. */
    path: z.string().min(1).optional(),
    dtype: z.enum(["float32", "float16", "bfloat16"]).optional(),
    quantization: z.enum(["4bit", "8bit"]).optional(),
    /** tiny: seed of the random weights. */
    seed: z.number().int().nonnegative().default(0),
    /** The model family, from the kind's backend table (MODEL_TYPES in config/families.ts; the first is the default). */
    type: z.string().min(1).optional(),
    /** Run the model repository's own code (ArmoRM's custom head needs it); the manifest records each code file's hash. */
    trust_remote_code: z.boolean().optional(),
    /** Image-text-to-text models: "chat" wraps the instruction in the processor's chat template; "raw" sends the instruction as written ("<image> question"), as the paper's responders were called. */
    prompt_format: z.enum(["chat", "raw"]).optional(),
    /** A tokenizer from elsewhere, for a checkpoint that ships none (THUDM/ImageReward: a BERT tokenizer): `<hub id>@<revision>` or a directory relative to the config file. */
    tokenizer: z.string().min(1).optional(),
  })
  .superRefine((m, ctx) => {
    const need = (key: "name" | "id" | "revision" | "path", why: string) => {
      if (m[key] === undefined) ctx.addIssue({ code: "custom", path: [key], message: `required ${why}` });
    };
    if (m.source === "tiny") need("name", "for source tiny");
    if (m.source === "hf") {
      need("id", "for source hf");
      need("revision", "for source hf (pin a commit for reproducible runs)");
    }
    if (m.source === "path") need("path", "for source path");
  });
export type ModelConfig = z.infer<typeof ModelSchema>;

/** Environment entries in a config reach the manifest: secrets must come from the process environment instead. */
// Words that are secrets wherever they stand (TOKENIZERS_PARALLELISM is no token), and words
// that are as a whole `_`-separated part (HF_AUTH, WANDB_KEY, DB_PASS, SMTP_PWD, SESSION_ID),
// so that MONKEY_PATCH, AUTHOR or PWD (the working directory) are not.
export const SECRET_NAME = /TOKEN(?!IZ)|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY|COOKIE|(^|_)(O?AUTH|SESSION|KEY)(_|$)|_(PASS|PWD)(_|$)/i;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const EnvSchema = z
  .record(z.string(), z.string())
  .superRefine((env, ctx) => {
    for (const k of Object.keys(env)) {
      if (!ENV_NAME.test(k)) ctx.addIssue({ code: "custom", path: [k], message: "not an environment variable name (letters, digits and '_', not starting with a digit)" });
      else if (SECRET_NAME.test(k)) ctx.addIssue({ code: "custom", path: [k], message: `looks like a secret; secrets come from the environment (export ${k}), never from the config` });
    }
  })
  .default({});

export const LocalRuntimeSchema = z.strictObject({
  type: z.literal("local"),
  /** Python interpreter with pds_dpo_workers installed (default: the project's .venv). */
  python: z.string().min(1).optional(),
  /** Seconds to wait for the worker to report SERVING. */
  start_timeout_s: z.number().positive().default(300),
  device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
  /** torch CPU threads of the worker; unset: torch's default (all cores). */
  cpu_threads: positiveInt.optional(),
  /** GPUs of the worker (CUDA_VISIBLE_DEVICES); unset: device 0 (all of the trainer's `train.gpus`). */
  devices: z.array(z.number().int().nonnegative()).min(1).optional(),
  /** Extra environment; secrets such as HF_TOKEN are passed through from the orchestrator's own. */
  env: EnvSchema,
});

export const DockerRuntimeSchema = z.strictObject({
  type: z.literal("docker"),
  /** The worker image for this worker's kind (tag or digest); a tag is pinned to its digest when the run starts. */
  image: z.string().min(1),
  /** GPUs for the container: "all" or device indices; omit for none. */
  gpus: z.union([z.literal("all"), z.array(z.number().int().nonnegative()).min(1)]).optional(),
  /** The container's GPUs by index (`--gpus device=...`), as a local worker's `devices`; the same as a list in `gpus`. */
  devices: z.array(z.number().int().nonnegative()).min(1).optional(),
  cpus: z.number().positive().optional(),
  /** torch CPU threads of the worker, as a local worker's; unset: torch's default. */
  cpu_threads: positiveInt.optional(),
  /** Docker memory limit, e.g. "32g". */
  memory: z.string().regex(/^\d+[bkmg]?$/i, "a docker memory size such as 32g").optional(),
  shm_size: z.string().regex(/^\d+[bkmg]?$/i, "a docker size such as 8g").optional(),
  start_timeout_s: z.number().positive().default(600),
  device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
  /** Extra environment set in the container (secrets: see PASSED_SECRETS, passed by name). */
  env: EnvSchema,
}).superRefine((r, ctx) => {
  if (r.devices && r.gpus !== undefined) ctx.addIssue({ code: "custom", path: ["devices"], message: "set devices or gpus, not both" });
});

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;
export const isLoopback = (endpoint: string) => LOOPBACK.test(endpoint);

export const RemoteRuntimeSchema = z
  .strictObject({
    type: z.literal("remote"),
    /** host:port of each running worker; one replica per endpoint. */
    endpoints: z.array(z.string().regex(/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i, "host:port")).default([]),
    /** Or host:port of a headless Service (Kubernetes): one replica per address its name resolves to, `replicas` of them. */
    service: z.string().regex(/^[^\s:]+:\d+$/, "host:port").optional(),
    tls: z
      .strictObject({
        /** CA that signed the workers' certificates (PEM), relative to the config file. */
        ca: z.string().min(1),
        /** Client certificate and key, for workers that require them. */
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
      })
      .optional(),
    /** Environment variable holding the bearer token (required off loopback). */
    token_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).default("PDS_DPO_WORKER_TOKEN"),
    start_timeout_s: z.number().positive().default(120),
  })
  .superRefine((r, ctx) => {
    if ((r.endpoints.length > 0) === (r.service !== undefined)) ctx.addIssue({ code: "custom", path: ["endpoints"], message: "give either endpoints (a list of host:port) or service (one host:port)" });
    r.endpoints.forEach((e, i) => {
      if (!isLoopback(e) && !r.tls) ctx.addIssue({ code: "custom", path: ["endpoints", i], message: `${e} is not on loopback: set runtime.tls (and a bearer token)` });
    });
    if (r.service && !isLoopback(r.service) && !r.tls) ctx.addIssue({ code: "custom", path: ["service"], message: `${r.service} is not on loopback: set runtime.tls (and a bearer token)` });
    if (Boolean(r.tls?.cert) !== Boolean(r.tls?.key)) ctx.addIssue({ code: "custom", path: ["tls"], message: "cert and key go together" });
  });

export const RuntimeSchema = z.discriminatedUnion("type", [LocalRuntimeSchema, DockerRuntimeSchema, RemoteRuntimeSchema]);
export type RuntimeConfig = z.infer<typeof RuntimeSchema>;
export type DockerRuntimeConfig = z.infer<typeof DockerRuntimeSchema>;
export type RemoteRuntimeConfig = z.infer<typeof RemoteRuntimeSchema>;

/** How many processes serve a worker: its endpoints when remote, else `replicas` (also behind a Service). */
export function replicaCount(w: WorkerConfig): number {
  return w.runtime.type === "remote" && w.runtime.endpoints.length > 0 ? w.runtime.endpoints.length : w.replicas;
}

export const WorkerSchema = z.strictObject({
  kind: z.enum(WORKER_KINDS),
  model: ModelSchema,
  runtime: RuntimeSchema.default({ type: "local", start_timeout_s: 300, device: "auto", env: {} }),
  /** Processes (or containers) of this worker; batches are shared among them. */
  replicas: positiveInt.default(1),
  /** Restarts of a replica that dies (local, docker); 0: it is dropped, and with none left the stage fails. */
  max_restarts: z.number().int().nonnegative().default(0),
  /** Items per RPC (default: DEFAULT_BATCH_SIZE of the kind). */
  batch_size: positiveInt.optional(),
  /** Retries of one batch whose call failed with a retryable error (the worker died or was unreachable, or a deadline passed); past them the run fails. */
  retries: z.number().int().nonnegative().default(2),
  /** Seconds one item may take (default: DEFAULT_ITEM_TIMEOUT_S of the kind); a call's deadline is 30 s plus this per item and per call queued before it, capped by call_timeout_s. */
  item_timeout_s: z.number().positive().optional(),
  /** The longest any one call may take (default: 1 hour; the trainer's whole training, 48 hours). */
  call_timeout_s: z.number().positive().optional(),
  /** gRPC keepalive: a ping this often; a worker that does not answer it within min(20, this) seconds is gone (a vanished host is noticed within a minute, not at the deadline). */
  keepalive_s: z.number().positive().default(30),
  /** `stage`: stopped once its last stage ends; `run`: kept until the run ends. */
  lifecycle: z.enum(["stage", "run"]).default("stage"),
});
export type WorkerConfig = z.infer<typeof WorkerSchema>;

export function batchSizeOf(w: WorkerConfig): number {
  return w.batch_size ?? DEFAULT_BATCH_SIZE[w.kind];
}

/** Generous seconds per item by kind: what a deadline is estimated from (the trainer's item is a pair in an epoch). */
export const DEFAULT_ITEM_TIMEOUT_S: Record<WorkerKindName, number> = {
  "image-generator": 120,
  "image-scorer": 30,
  responder: 300,
  "response-scorer": 30,
  "dpo-trainer": 60,
  evaluator: 60,
};

/** The cap on one call's deadline. */
export function callTimeoutSOf(w: WorkerConfig): number {
  return w.call_timeout_s ?? (w.kind === "dpo-trainer" ? 48 * 3600 : 3600);
}

export function itemTimeoutSOf(w: WorkerConfig): number {
  return w.item_timeout_s ?? DEFAULT_ITEM_TIMEOUT_S[w.kind];
}

const sizeSchema = z.union([
  positiveInt,
  z.strictObject({ width: positiveInt, height: positiveInt }),
]);

export const ImagesStageSchema = z.strictObject({
  /** JSONL: {id, category, t2i_prompt, instruction} a line; relative to the config file. */
  prompts: z.string().min(1),
  /** Use only the first N prompts. */
  limit: positiveInt.optional(),
  generator: z.string().min(1),
  scorer: z.string().min(1),
  guidance_scales: z.array(z.number().nonnegative()).min(1),
  images_per_scale: positiveInt.default(1),
  steps: positiveInt,
  /** Pixels; omit for the model's default (SD3 and SDXL 1024, SD1.5 512), which the generator resolves. */
  size: sizeSchema.optional(),
  /** Where each image's seeded torch.Generator lives: "cpu" (the same image on any device) or "model" (the model's device: a CUDA generator on a GPU, as the paper's later code seeded). */
  generator_device: z.enum(["cpu", "model"]).default("cpu"),
  negative_prompt: z.string().default(""),
  /** Keep no image of a prompt whose best score is below this. */
  min_score: z.number().optional(),
});

// The later stages' settings. Their executors land with their issues; the shapes are
// fixed now so configs (the paper's included) validate against the whole contract.
const DecodingSchema = z
  .strictObject({
    max_new_tokens: positiveInt.default(256),
    do_sample: z.boolean().default(false),
    temperature: z.number().positive().optional(),
    top_p: z.number().positive().max(1).optional(),
    top_k: positiveInt.optional(),
    num_samples: positiveInt.default(1),
  })
  .superRefine((d, ctx) => {
    // Greedy decoding gives one answer; several samples need sampling.
    if (d.num_samples > 1 && !d.do_sample) ctx.addIssue({ code: "custom", path: ["num_samples"], message: "several samples need do_sample: true" });
  });

/** How chosen/rejected pairs are picked from scored answers (plan/pairs.ts). */
export const PairPolicySchema = z.strictObject({
  policy: z.enum(["best-vs-worst"]).default("best-vs-worst"),
  /** A pair needs chosen.score - rejected.score >= this (and > 0 when drop_ties). */
  min_margin: z.number().nonnegative().default(0),
  drop_ties: z.boolean().default(true),
  /** Answers cut off at max_new_tokens are not candidates. */
  drop_truncated: z.boolean().default(true),
  /** Pairs whose normalized texts are at least this similar (0..1) are dropped; 1 disables. */
  max_similarity: z.number().min(0).max(1).default(0.9),
  /** Longer/shorter word-count ratio above this drops the pair; unset disables. */
  max_length_ratio: z.number().min(1).optional(),
  pairs_per_image: positiveInt.default(1),
  /** Empty answers are scored and may be chosen or rejected, as the paper's scripts did (paper-faithful, off by default); failed generations never are. */
  keep_empty: z.boolean().default(false),
});
export type PairPolicy = z.infer<typeof PairPolicySchema>;
export const DEFAULT_PAIR_POLICY: PairPolicy = PairPolicySchema.parse({});

export const ResponsesStageSchema = z.strictObject({
  responders: z.array(z.string().min(1)).min(1),
  decoding: DecodingSchema.default({ max_new_tokens: 256, do_sample: false, num_samples: 1 }),
  /** One response scorer, or a weighted sum of several (e.g. a text reward model and a VLM judge). */
  scorer: z.union([z.string().min(1), z.array(z.strictObject({ worker: z.string().min(1), weight: z.number() })).min(1)]),
  pairs: PairPolicySchema.default(() => PairPolicySchema.parse({})),
});

export const TrainStageSchema = z.strictObject({
  trainer: z.string().min(1),
  /** Train on this preference dataset instead of the run's own pairs (no images or responses stage): a file relative to the config, its images relative to it. */
  dataset: z.string().min(1).optional(),
  /** Directory the dataset's image paths are relative to; default: the dataset's directory, or the run directory for a run's own dataset/ files. */
  image_root: z.string().min(1).optional(),
  /** Its format; default by name: .jsonl TRL (the project's pairs.jsonl), .json the PDS-DPO release (LLaVA) format. */
  dataset_format: z.enum(["trl", "llava", "llama-factory", "ms-swift"]).optional(),
  lora: z.strictObject({
    r: positiveInt,
    alpha: positiveInt,
    dropout: z.number().min(0).max(1).default(0.05),
    /** Module names, or "all-linear": every linear layer of the language model (not the vision tower, projector or output head), as the paper's POVID-derived code. Unset: the language model's attention projections. */
    target_modules: z.union([z.literal("all-linear"), z.array(z.string().min(1)).min(1)]).optional(),
  }),
  dpo: z.strictObject({ beta: z.number().positive(), loss_type: z.string().default("sigmoid") }),
  optim: z.strictObject({
    lr: z.number().positive(),
    projector_lr: z.number().positive().optional(),
    scheduler: z.string().default("cosine"),
    warmup_ratio: z.number().min(0).max(1).default(0),
    epochs: positiveInt.optional(),
    max_steps: positiveInt.optional(),
    batch_size: positiveInt.default(1),
    grad_accumulation: positiveInt.default(1),
    precision: z.enum(["fp32", "bf16", "fp16"]).default("fp32"),
    max_length: positiveInt.optional(),
    /** TF32 matmuls on Ampere or newer GPUs (CUDA only). */
    tf32: z.boolean().default(false),
    /** Recompute activations in the backward pass: less memory, slower steps. */
    gradient_checkpointing: z.boolean().default(false),
  }),
  /** Save a checkpoint every N optimizer steps (and at the end). */
  checkpoint_every: positiveInt.default(50),
  gpus: positiveInt.default(1),
  deepspeed: z.string().optional(),
  /** Training logs besides train/metrics.jsonl, through TRL: TensorBoard event files under train/tensorboard/, W&B offline (unless WANDB_MODE is set) under train/wandb/. */
  report_to: z
    .array(z.enum(["tensorboard", "wandb"]))
    .default([])
    .refine((r) => new Set(r).size === r.length, "each logger once"),
});

export const POPE_SPLITS = ["random", "popular", "adversarial"] as const;
export const BENCHMARK_TYPES = ["pope", "smoke-pope", "object-halbench", "amber", "mmhal"] as const;
export type BenchmarkType = (typeof BENCHMARK_TYPES)[number];
/** The reference files each benchmark type reads besides its questions, by role: [required, optional]. */
export const BENCHMARK_ROLES: Record<BenchmarkType, { required: string[]; optional: string[] }> = {
  pope: { required: [], optional: [] },
  "smoke-pope": { required: [], optional: [] },
  "object-halbench": { required: ["instances", "captions", "synonyms"], optional: [] },
  amber: { required: ["annotations"], optional: ["relation", "safe_words"] },
  mmhal: { required: [], optional: [] },
};
/** Answers that are captions or free text need room; a yes/no answer takes the stage's max_new_tokens. */
export const GENERATIVE_MAX_NEW_TOKENS = 512;
/** An MMHal judge's reply: a short explanation, then "Rating: N". */
export const JUDGE_MAX_NEW_TOKENS = 512;

export const BenchmarkSchema = z
  .strictObject({
    /** The reader; optional only where `name` is itself a type (older configs: `{name: pope, splits: ...}`). */
    type: z.enum(BENCHMARK_TYPES).optional(),
    /** Its label in eval/ files, the summary and the report; unique in the stage. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' and '-'"),
    /** The question file: POPE JSON lines, Object-HalBench JSON lines, AMBER query_all.json, MMHal response_template.json. */
    path: z.string().min(1).optional(),
    /** POPE only: one question file per split. */
    splits: z.partialRecord(z.enum(POPE_SPLITS), z.string().min(1)).optional(),
    /** Directory the questions' image paths are relative to (default: the question file's). */
    image_root: z.string().min(1).optional(),
    /** Reference files by role (object-halbench: instances, captions, synonyms; amber: annotations, relation, safe_words). */
    references: z.record(z.string(), z.string().min(1)).optional(),
    /** Tokens per answer (default: the stage's max_new_tokens for yes/no benchmarks, GENERATIVE_MAX_NEW_TOKENS for the others). */
    max_new_tokens: positiveInt.optional(),
    /** mmhal: the responder worker that rates each answer with MMHal-Bench's rubric. */
    judge: z.string().min(1).optional(),
    /** mmhal: tokens of each judge reply (its explanation, then "Rating: N"; default JUDGE_MAX_NEW_TOKENS). */
    judge_max_new_tokens: positiveInt.optional(),
  })
  .superRefine((b, ctx) => {
    const type = benchmarkType(b);
    if (!type) {
      ctx.addIssue({ code: "custom", path: ["type"], message: `required (one of ${BENCHMARK_TYPES.join(", ")})` });
      return;
    }
    const files = b.path !== undefined || b.splits !== undefined;
    if (b.splits && type !== "pope") ctx.addIssue({ code: "custom", path: ["splits"], message: `only POPE has splits; give ${type} its question file as path` });
    if (b.path && b.splits) ctx.addIssue({ code: "custom", path: ["path"], message: "give path or splits, not both" });
    if (type === "smoke-pope" && (files || b.image_root || b.references)) ctx.addIssue({ code: "custom", path: [files ? (b.path ? "path" : "splits") : b.image_root ? "image_root" : "references"], message: "a smoke-pope is built from the run's own images: it takes no files" });
    if (type !== "smoke-pope" && !files) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message:
          type === "pope" && !b.type
            ? "POPE needs its question files (splits: {random, popular, adversarial} or path); the benchmark built from the run's own images is now {type: smoke-pope, name: smoke-pope}"
            : `${type} needs its question file (path)`,
      });
    }
    const roles = BENCHMARK_ROLES[type];
    for (const role of Object.keys(b.references ?? {})) {
      if (![...roles.required, ...roles.optional].includes(role)) ctx.addIssue({ code: "custom", path: ["references", role], message: `${type} reads no '${role}' file${roles.required.length + roles.optional.length ? ` (roles: ${[...roles.required, ...roles.optional].join(", ")})` : ""}` });
    }
    for (const role of roles.required) if (!b.references?.[role]) ctx.addIssue({ code: "custom", path: ["references", role], message: `required for ${type}` });
    if (type === "mmhal" && !b.judge) ctx.addIssue({ code: "custom", path: ["judge"], message: "required for mmhal: a responder worker that rates the answers" });
    if (type !== "mmhal" && (b.judge || b.judge_max_new_tokens)) ctx.addIssue({ code: "custom", path: [b.judge ? "judge" : "judge_max_new_tokens"], message: `only mmhal is judged; ${type} computes its metrics itself` });
  });
export type BenchmarkConfig = z.infer<typeof BenchmarkSchema>;

/** A benchmark's reader: its `type`, or its name where that is a type (older configs). */
export function benchmarkType(b: { type?: BenchmarkType; name: string }): BenchmarkType | undefined {
  return b.type ?? (BENCHMARK_TYPES as readonly string[]).find((t) => t === b.name) as BenchmarkType | undefined;
}

/** Tokens per answer of a benchmark: its own setting, else the stage's for yes/no readers, else GENERATIVE_MAX_NEW_TOKENS. */
export function benchmarkMaxNewTokens(b: BenchmarkConfig, stageMax: number): number {
  const type = benchmarkType(b);
  return b.max_new_tokens ?? (type === "pope" || type === "smoke-pope" ? stageMax : GENERATIVE_MAX_NEW_TOKENS);
}

export const EvaluateStageSchema = z
  .strictObject({
    evaluator: z.string().min(1),
    benchmarks: z.array(BenchmarkSchema).min(1),
    /** Tokens per yes/no answer (POPE); generative benchmarks take their own (benchmarks[].max_new_tokens). */
    max_new_tokens: positiveInt.default(8),
    batch_size: positiveInt.optional(),
    /** Evaluate even where a benchmark image is (nearly) a training image; the overlap is then flagged in the summary and report. */
    allow_overlap: z.boolean().default(false),
  })
  .superRefine((s, ctx) => {
    s.benchmarks.forEach((b, i) => {
      if (s.benchmarks.findIndex((o) => o.name === b.name) !== i) ctx.addIssue({ code: "custom", path: ["benchmarks", i, "name"], message: `'${b.name}' names an earlier benchmark too: names label the results, give each its own` });
    });
  });
export type EvaluateStageConfig = z.infer<typeof EvaluateStageSchema>;

export const STAGES = ["images", "responses", "train", "evaluate"] as const;
export type StageName = (typeof STAGES)[number];

/** A data-size sweep: each (size, seed) trains one adapter on a nested, seeded subset of the pairs (plan/sweep.ts). */
export const SweepSchema = z.strictObject({
  /** Pairs per point; the subsets of one seed are nested (the smaller inside the larger). */
  "train.data_size": z.array(positiveInt).min(1),
  /** One point per size and seed: the seed orders the pairs and seeds the training (default: the experiment's seed). */
  seeds: z.array(z.number().int().nonnegative()).min(1).optional(),
}).superRefine((s, ctx) => {
  const twice = (xs: number[]) => xs.find((x, i) => xs.indexOf(x) !== i);
  const size = twice(s["train.data_size"]);
  if (size !== undefined) ctx.addIssue({ code: "custom", path: ["train.data_size"], message: `${size} is listed twice` });
  const seed = twice(s.seeds ?? []);
  if (seed !== undefined) ctx.addIssue({ code: "custom", path: ["seeds"], message: `${seed} is listed twice` });
});
export type SweepConfigSchema = z.infer<typeof SweepSchema>;

/** GPU memory per device in GB (10^9 bytes): one number for every device, or by device index. */
const GpuMemorySchema = z.union([z.number().positive(), z.record(z.string().regex(/^\d+$/, "a device index"), z.number().positive())]);

export const ExperimentSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' and '-'"),
  /** Declared GPU memory: the memory plan refuses a run whose workers cannot fit (plan/memory.ts). */
  gpu_memory_gb: GpuMemorySchema.optional(),
  seed: z.number().int().nonnegative().default(0),
  seed_policy: z.enum(["derived", "pds-dpo"]).default("derived"),
  workers: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "worker names use a-z, 0-9, '_' and '-'"), WorkerSchema),
  stages: z
    .strictObject({
      /** Required, unless the train stage trains on a dataset of your own (train.dataset). */
      images: ImagesStageSchema.optional(),
      responses: ResponsesStageSchema.optional(),
      train: TrainStageSchema.optional(),
      evaluate: EvaluateStageSchema.optional(),
    })
    .superRefine((s, ctx) => {
      if (!s.images && !s.train?.dataset) ctx.addIssue({ code: "custom", path: ["images"], message: "required (or train on a dataset of your own: stages.train.dataset)" });
      if (s.responses && !s.images) ctx.addIssue({ code: "custom", path: ["responses"], message: "answers the images stage's images: add stages.images" });
      if (s.train?.dataset && s.responses) ctx.addIssue({ code: "custom", path: ["train", "dataset"], message: "replaces the responses stage's pairs: train on one or the other" });
      s.evaluate?.benchmarks.forEach((b, i) => {
        if (!s.images && benchmarkType(b) === "smoke-pope") ctx.addIssue({ code: "custom", path: ["evaluate", "benchmarks", i], message: "a smoke-pope is built from the images stage's images: add stages.images, or name a benchmark's files" });
      });
    }),
  /** A data-size sweep of the train stage (and evaluate, one variant a point). */
  sweep: SweepSchema.optional(),
}).superRefine((c, ctx) => {
  if (c.sweep && !c.stages.train) ctx.addIssue({ code: "custom", path: ["sweep"], message: "sweeps the train stage's data size: add stages.train" });
});
export type ExperimentConfig = z.infer<typeof ExperimentSchema>;
export type ImagesStageConfig = z.infer<typeof ImagesStageSchema>;
export type ResponsesStageConfig = z.infer<typeof ResponsesStageSchema>;
export type TrainStageConfig = z.infer<typeof TrainStageSchema>;

/** The response scorers of a responses stage with their weights. */
export function responseScorers(stage: ResponsesStageConfig): { worker: string; weight: number }[] {
  return typeof stage.scorer === "string" ? [{ worker: stage.scorer, weight: 1 }] : stage.scorer;
}

/** Which stage field names which kind of worker: checked after parsing. */
export const WORKER_REFERENCES: { stage: StageName; field: string; kind: WorkerKindName; key?: string }[] = [
  { stage: "images", field: "generator", kind: "image-generator" },
  { stage: "images", field: "scorer", kind: "image-scorer" },
  { stage: "responses", field: "responders", kind: "responder" },
  { stage: "responses", field: "scorer", kind: "response-scorer", key: "worker" },
  { stage: "train", field: "trainer", kind: "dpo-trainer" },
  { stage: "evaluate", field: "evaluator", kind: "evaluator" },
  // MMHal-Bench's judge: a responder that rates each answer (benchmarks[].judge).
  { stage: "evaluate", field: "benchmarks", kind: "responder", key: "judge" },
];

/** The worker names one reference field holds: a name, a list of names, or a list of {<key>: name}. */
export function referencedNames(stages: ExperimentConfig["stages"], ref: (typeof WORKER_REFERENCES)[number]): string[] {
  return referencedEntries(stages, ref).map((e) => e.name);
}

/** The names with their index in a list field (a list entry without the key, a benchmark without a judge, names none). */
export function referencedEntries(stages: ExperimentConfig["stages"], ref: (typeof WORKER_REFERENCES)[number]): { name: string; index?: number }[] {
  const value = (stages[ref.stage] as Record<string, unknown> | undefined)?.[ref.field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) return [{ name: value as string }];
  return value.flatMap((v, index) => {
    const name = ref.key && typeof v === "object" && v ? (v as Record<string, string | undefined>)[ref.key] : (v as string);
    return name === undefined ? [] : [{ name, index }];
  });
}
