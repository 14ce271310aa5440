// A protocol-level test worker: serves the real generated services over real gRPC on
// 127.0.0.1, in the test process, with deterministic outputs and no model. It speaks the
// contract of proto/pdsdpo/v1 the way the Python workers (python_workers/pds_dpo_workers)
// do: health (grpc.health.v1), WorkerService.Describe (a WorkerInfo echoing the model spec
// it was given, with a resolved revision and a weights hash), and its kind's streaming RPC
// with progress messages, per-item errors and files written into the content-addressed
// store (<store>/cas/sha256/<ab>/<sha256>, temp file + rename, as store.py writes them).
//
// Outputs are pure functions of the request and the model spec (seed included):
// - image generator: a small real PNG from the item's seed, prompt, scale, steps and size;
// - image scorer: a score from the prompt and the image bytes' hash;
// - responder: words drawn from the item seed, sample, instruction and image;
// - response scorer: a score from the question and answer (vlm-judge: a P(yes));
// - DPO trainer: step metrics, checkpoints (checkpoint-<step>/ in checkpoint_dir; `resume`
//   goes on from the newest) and an adapter (safetensors) + adapter_config.json in the store;
// - evaluator: yes/no answers to POPE rows (depending on the adapter's bytes) and POPE metrics.
//
// Faults are injected per worker (see Faults): empty answers, item errors, image defects,
// constant scores (ties), a call that hangs, a call that fails with UNAVAILABLE mid-stream, a
// worker that dies mid-call. Every model call is counted (`calls`).
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { HealthCheckResponse_ServingStatus, HealthService, type HealthCheckRequest, type HealthCheckResponse } from "../../src/gen/grpc/health/v1/health.js";
import { ModelSource, OutputMode, type ArtifactRef, type Blob, type ItemError, type ModelSpec, type Progress, type WorkerInfo } from "../../src/gen/pdsdpo/v1/common.js";
import { DpoTrainerServiceService, type TrainRequest, type TrainResponse } from "../../src/gen/pdsdpo/v1/dpo_trainer.js";
import { EvaluatorServiceService, type EvaluateRequest, type EvaluateResponse } from "../../src/gen/pdsdpo/v1/evaluator.js";
import { ImageDefect, ImageGeneratorServiceService, type GenerateRequest, type GenerateResponse } from "../../src/gen/pdsdpo/v1/image_generator.js";
import { ImageScorerServiceService, type ImageScorerServiceScoreRequest, type ImageScorerServiceScoreResponse } from "../../src/gen/pdsdpo/v1/image_scorer.js";
import { ResponderServiceService, type RespondItem, type RespondRequest, type RespondResponse } from "../../src/gen/pdsdpo/v1/responder.js";
import { ResponseScorerServiceService, type ResponseScorerServiceScoreRequest, type ResponseScorerServiceScoreResponse } from "../../src/gen/pdsdpo/v1/response_scorer.js";
import { WorkerServiceService, type DescribeRequest, type DescribeResponse } from "../../src/gen/pdsdpo/v1/worker.js";
import { kindEnum } from "../../src/workers/kinds.js";
import { encodePng } from "./png.js";

export type KindName = "image-generator" | "image-scorer" | "responder" | "response-scorer" | "dpo-trainer" | "evaluator";

const SERVICE_NAMES: Record<KindName, string> = {
  "image-generator": "pdsdpo.v1.ImageGeneratorService",
  "image-scorer": "pdsdpo.v1.ImageScorerService",
  responder: "pdsdpo.v1.ResponderService",
  "response-scorer": "pdsdpo.v1.ResponseScorerService",
  "dpo-trainer": "pdsdpo.v1.DpoTrainerService",
  evaluator: "pdsdpo.v1.EvaluatorService",
};

/** A model entry as experiment.yaml writes it. */
export interface ModelConfig {
  source: "tiny" | "hf" | "path";
  name?: string;
  id?: string;
  revision?: string;
  /** source path: an absolute directory (the config's base directory is not known here). */
  path?: string;
  seed?: number;
  type?: string;
  dtype?: string;
}

/** The ModelSpec the orchestrator derives from a model entry (src/workers/model-spec.ts), for Describe to echo. */
export function modelSpecOf(m: ModelConfig): ModelSpec {
  const source = { tiny: ModelSource.MODEL_SOURCE_TINY, hf: ModelSource.MODEL_SOURCE_HF, path: ModelSource.MODEL_SOURCE_PATH }[m.source];
  return {
    source,
    id: m.source === "tiny" ? (m.name ?? "") : (m.id ?? ""),
    revision: m.revision ?? "",
    path: m.path ?? "",
    dtype: m.dtype ?? "",
    quantization: "",
    seed: m.seed ?? 0,
    options: m.type ? { type: m.type } : {},
  };
}

/** One model call (a kind RPC) as the worker saw it. */
export interface CallInfo {
  method: string;
  /** 0 for the worker's first model call, 1 for the next, ... */
  index: number;
  /** The item ids of the request (the trainer: "dataset"; the evaluator: the adapter or "base"). */
  ids: string[];
  /** The request as the worker got it. */
  request: unknown;
}

export interface Faults {
  /** Responder: answer "" (finish "stop") to this item's sample. */
  empty?: (id: string, sample: number) => boolean;
  /** Responder: this text instead of the model's answer to an item's sample. */
  answer?: (id: string, sample: number) => string | undefined;
  /** An item error instead of the item's result (deterministic from the code unless given). */
  itemError?: (id: string) => { code: string; message: string; deterministic?: boolean } | undefined;
  /** Image generator: the defects of an item's image (all_black makes it black). */
  defects?: (id: string) => ImageDefect[];
  /** Scorers: a fixed score for an item (equal scores make ties). */
  score?: (id: string) => number | undefined;
  /** The call ends without this item's results (a model that returns nothing for it). */
  omit?: (id: string) => boolean;
  /** The call never answers, until it is cancelled or the worker stops. */
  hang?: (call: CallInfo) => boolean;
  /** After this many results the call fails with UNAVAILABLE (a replica lost mid-stream). */
  unavailableAfter?: (call: CallInfo) => number | undefined;
  /** After this many results the worker dies (its server is shut down; under TestRuntime: killed by SIGKILL). */
  dieAfter?: (call: CallInfo) => number | undefined;
  /** Milliseconds before each result. */
  delayMs?: number;
  /** Health answers NOT_SERVING (a model still loading). */
  notServing?: boolean;
  /** Describe reports no weights hash: the orchestrator must never cache this worker's items. */
  noWeightsHash?: boolean;
  /** Responder: an instruction longer than this many characters fails with context_too_long. */
  contextChars?: number;
  /** Describe reports this resolved revision (another build of the same model). */
  resolvedRevision?: string;
}

export interface TestWorkerOptions {
  kind: KindName;
  model: ModelConfig | ModelSpec;
  /** Store root the worker writes artifacts into and reads references from. */
  store: string;
  faults?: Faults;
  /** Bind this port (a restarted worker keeps its endpoint); default: any free port. */
  port?: number;
  /** Bind this loopback address (pods of one Service: same port, other addresses); default 127.0.0.1. */
  host?: string;
}

// -- small pure helpers ----------------------------------------------------------------------

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A number in [0, 1) from any JSON-able parts. */
function unit(...parts: unknown[]): number {
  return createHash("sha256").update(JSON.stringify(parts)).digest().readUIntBE(0, 6) / 2 ** 48;
}

function rpcError(code: status, details: string): Error & { code: status; details: string } {
  return Object.assign(new Error(details), { code, details });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const turn = () => new Promise<void>((r) => setImmediate(r));

/** Thrown inside a call once it must not send anything more. */
const STOP = Symbol("stop");

export const PROTOCOL_VERSION = "1";

/** Error codes that follow from the input alone (base.py's DETERMINISTIC_CODES): the orchestrator may journal them. */
export const DETERMINISTIC_CODES = new Set(["invalid_input", "invalid_image", "context_too_long", "empty_answer"]);

/** An item error as the workers send it: deterministic from the code's table unless the fault says otherwise. */
export function itemError(code: string, message: string, deterministic = DETERMINISTIC_CODES.has(code)): ItemError {
  return { code, message: message.slice(0, 2000), deterministic };
}

type FaultError = { code: string; message: string; deterministic?: boolean };
const asItemError = (e: FaultError | undefined): ItemError | undefined => (e ? itemError(e.code, e.message, e.deterministic) : undefined);
const ENV_HASH = sha256("pds-dpo test worker environment v1");

const VOCABULARY = (
  "a the red blue green small large wooden metal old bright dark cup table chair window tree river car street building " +
  "painting robot cloud flower coat plate sofa desk light shadow corner wall floor sky grass stone glass paper near behind " +
  "under beside shows holds stands sits lies appears looks with and of in on"
).split(" ");

// -- the content-addressed store (store.py's layout and rules) -----------------------------

export const URI_PREFIX = "cas://sha256/";

export function casPath(store: string, hex: string): string {
  return join(store, "cas", "sha256", hex.slice(0, 2), hex);
}

/** Writes bytes into the store (temp + rename; a damaged copy is replaced) and returns its reference. */
export function putArtifact(store: string, data: Uint8Array, mediaType: string): ArtifactRef {
  const hex = sha256(data);
  const dest = casPath(store, hex);
  let intact = false;
  try {
    intact = sha256(readFileSync(dest)) === hex;
  } catch {
    intact = false;
  }
  if (!intact) {
    mkdirSync(dirname(dest), { recursive: true });
    const tmp = join(dirname(dest), `.tmp-${randomBytes(6).toString("hex")}`);
    writeFileSync(tmp, data, { mode: 0o644 });
    renameSync(tmp, dest);
  }
  return { uri: URI_PREFIX + hex, sha256: hex, bytes: data.length, mediaType };
}

/** An input's bytes: inline, or a store reference checked against its hash. */
/** An item's image as the Python kinds take it: its sha256, or an invalid_image item error when it cannot be read. */
function imageOf(store: string, blob: Blob | undefined): { imageSha: string; error?: ItemError } {
  try {
    return { imageSha: sha256(readBlob(store, blob)) };
  } catch (e) {
    return { imageSha: "", error: itemError("invalid_image", `ArtifactError: ${(e as Error).message}`) };
  }
}

export function readBlob(store: string, blob: Blob | undefined): Buffer {
  const kind = blob?.kind;
  if (kind?.$case === "inline") return Buffer.from(kind.value);
  if (kind?.$case !== "ref") throw rpcError(status.FAILED_PRECONDITION, "empty blob");
  const ref = kind.value;
  if (!ref.uri.startsWith(URI_PREFIX)) throw rpcError(status.FAILED_PRECONDITION, `unsupported artifact uri '${ref.uri}'`);
  const hex = ref.uri.slice(URI_PREFIX.length);
  const path = casPath(store, hex);
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    throw rpcError(status.FAILED_PRECONDITION, `artifact ${ref.uri} is not in the store at ${path}`);
  }
  if (sha256(data) !== hex) throw rpcError(status.FAILED_PRECONDITION, `artifact ${ref.uri} does not match its sha256`);
  return data;
}

/** POPE metrics as pope.py computes them ("yes" is the positive class). */
export function popeMetrics(labels: string[], predictions: string[]): Record<string, number> {
  const n = labels.length;
  let tp = 0;
  let tn = 0;
  let fp = 0;
  let fn = 0;
  labels.forEach((l, i) => {
    const p = predictions[i];
    if (l === "yes" && p === "yes") tp++;
    else if (l === "no" && p === "no") tn++;
    else if (l === "no" && p === "yes") fp++;
    else if (l === "yes") fn++;
  });
  const unparseable = predictions.filter((p) => p === "unparseable").length;
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    questions: n,
    accuracy: n ? (tp + tn) / n : 0,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    yes_ratio: n ? predictions.filter((p) => p === "yes").length / n : 0,
    unparseable,
    unparseable_ratio: n ? unparseable / n : 0,
  };
}

function parseYesNo(answer: string): string {
  const words = answer.toLowerCase().match(/[a-z]+/g) ?? [];
  if (words[0] === "yes") return "yes";
  if (words[0] === "no") return "no";
  return "unparseable";
}

/** A tiny but valid safetensors file: one F32 tensor. */
function safetensors(values: number[], metadata: Record<string, string>): Buffer {
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  let header = JSON.stringify({ __metadata__: metadata, "base_model.model.lora_A.weight": { dtype: "F32", shape: [values.length], data_offsets: [0, data.length] } });
  header += " ".repeat((8 - (header.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, Buffer.from(header), data]);
}

function latestCheckpoint(dir: string): number {
  if (!existsSync(dir)) return 0;
  const steps = readdirSync(dir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number);
  return steps.length ? Math.max(...steps) : 0;
}

// -- the worker -----------------------------------------------------------------------------

interface Out<R> {
  /** An item's result: counted, delayed and subject to the call's faults. */
  result(msg: R): Promise<void>;
  /** Anything else (progress, a checkpoint). */
  send(msg: R): Promise<void>;
  readonly cancelled: boolean;
}

export class TestWorker {
  readonly kind: KindName;
  /** The model this worker says it serves; a test may swap it (another model, same endpoint). */
  spec: ModelSpec;
  /** Where the worker writes and reads artifacts; a test may point it at another store. */
  store: string;
  faults: Faults;
  /** Every model call (kind RPC) so far. */
  readonly calls: CallInfo[] = [];
  describes = 0;
  /** Model calls the client cancelled (Ctrl-C, a deadline, a dropped connection). */
  cancelledCalls = 0;
  port = 0;
  /** Called once when the worker dies (a dieAfter fault or kill()). */
  onDeath: (() => void) | undefined;
  private server: Server | undefined;
  private dead = false;
  /** One model call at a time, as the Python workers' ModelRunner: a second call waits its turn. */
  private busy: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly o: TestWorkerOptions) {
    this.kind = o.kind;
    this.spec = "source" in o.model && typeof o.model.source === "number" ? (o.model as ModelSpec) : modelSpecOf(o.model as ModelConfig);
    this.store = o.store;
    this.faults = o.faults ?? {};
  }

  get address(): string {
    return `${this.o.host ?? "127.0.0.1"}:${this.port}`;
  }

  get alive(): boolean {
    return this.server !== undefined && !this.dead;
  }

  /** Model calls so far. */
  get modelCalls(): number {
    return this.calls.length;
  }

  /** Item ids of every model call so far, in call order. */
  get items(): string[] {
    return this.calls.flatMap((c) => c.ids);
  }

  async start(): Promise<this> {
    const server = new Server({ "grpc.max_receive_message_length": 64 * 1024 * 1024, "grpc.max_send_message_length": 64 * 1024 * 1024 });
    server.addService(HealthService, {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: sendUnaryData<HealthCheckResponse>) => {
        const known = ["", SERVICE_NAMES[this.kind], "pdsdpo.v1.WorkerService"].includes(call.request.service);
        if (!known) return cb(rpcError(status.NOT_FOUND, `unknown service ${call.request.service}`));
        cb(null, { status: this.faults.notServing ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        call.write({ status: this.faults.notServing ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING });
      },
    });
    server.addService(WorkerServiceService, {
      describe: (_call: ServerUnaryCall<DescribeRequest, DescribeResponse>, cb: sendUnaryData<DescribeResponse>) => {
        this.describes++;
        if (this.faults.notServing) return cb(rpcError(status.UNAVAILABLE, "the model is still loading"));
        cb(null, { info: this.info() });
      },
    });
    const kindServices = {
      "image-generator": () => server.addService(ImageGeneratorServiceService, { generate: this.stream("Generate", (r: GenerateRequest) => r.items.map((i) => i.id), (r, out) => this.generate(r, out)) }),
      "image-scorer": () =>
        server.addService(ImageScorerServiceService, {
          score: this.stream("Score", (r: ImageScorerServiceScoreRequest) => r.items.map((i) => i.id), (r, out) => this.scoreImages(r, out)),
        }),
      responder: () => server.addService(ResponderServiceService, { respond: this.stream("Respond", (r: RespondRequest) => r.items.map((i) => i.id), (r, out) => this.respond(r, out)) }),
      "response-scorer": () =>
        server.addService(ResponseScorerServiceService, {
          score: this.stream("Score", (r: ResponseScorerServiceScoreRequest) => r.items.map((i) => i.id), (r, out) => this.scoreResponses(r, out)),
        }),
      "dpo-trainer": () => server.addService(DpoTrainerServiceService, { train: this.stream("Train", () => ["dataset"], (r: TrainRequest, out) => this.train(r, out)) }),
      evaluator: () =>
        server.addService(EvaluatorServiceService, {
          evaluate: this.stream("Evaluate", (r: EvaluateRequest) => [r.adapterDir || "base"], (r, out) => this.evaluate(r, out)),
        }),
    } as const;
    kindServices[this.kind]();
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.o.host ?? "127.0.0.1"}:${this.o.port ?? 0}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    this.server = server;
    this.dead = false;
    return this;
  }

  /** Stops serving; calls in flight are cancelled. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.wake();
    server?.forceShutdown();
  }

  /** Dies at once, as a killed process: every call in flight breaks off. */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    void this.stop();
    this.onDeath?.();
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  info(): WorkerInfo {
    const weights = this.faults.noWeightsHash ? "" : sha256(JSON.stringify(["weights", this.kind, this.spec]));
    const revision = this.faults.resolvedRevision ?? (this.spec.source === ModelSource.MODEL_SOURCE_HF ? this.spec.revision : this.spec.source === ModelSource.MODEL_SOURCE_PATH ? "local" : "tiny-v1");
    return {
      kind: kindEnum(this.kind),
      model: {
        spec: this.spec,
        resolvedRevision: revision,
        weightsSha256: weights,
        files: weights ? [{ path: "model.safetensors", sha256: weights, bytes: 1024 }] : [],
        modelClass: `Test${this.kind.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase())}`,
        remoteCode: [],
      },
      libraryVersions: { "pds-dpo-test-worker": "1" },
      device: { type: "cpu", name: "test", memoryBytes: 0, count: 1 },
      imageDigest: "",
      protocolVersion: PROTOCOL_VERSION,
      pythonEnvHash: ENV_HASH,
      pid: process.pid,
    };
  }

  /** What the model's outputs depend on: the kind and the whole spec (the seed included). */
  private get modelKey(): string {
    return sha256(JSON.stringify([this.kind, this.spec]));
  }

  // -- call plumbing ---------------------------------------------------------------------------

  private stream<Q, R>(method: string, ids: (req: Q) => string[], body: (req: Q, out: Out<R>) => Promise<void>) {
    return (call: ServerWritableStream<Q, R>) => {
      const info: CallInfo = { method, index: this.calls.length, ids: ids(call.request), request: call.request };
      this.calls.push(info);
      call.once("cancelled", () => this.cancelledCalls++);
      void this.serve(call, info, body);
    };
  }

  private async serve<Q, R>(call: ServerWritableStream<Q, R>, info: CallInfo, body: (req: Q, out: Out<R>) => Promise<void>): Promise<void> {
    const f = this.faults;
    const unavailableAfter = f.unavailableAfter?.(info);
    const dieAfter = f.dieAfter?.(info);
    let results = 0;
    const gone = () => call.cancelled || this.dead || this.server === undefined;
    const faultDue = () => {
      if (unavailableAfter !== undefined && results >= unavailableAfter) {
        call.emit("error", rpcError(status.UNAVAILABLE, `test worker ${this.address}: replica lost mid-stream`));
        throw STOP;
      }
      if (dieAfter !== undefined && results >= dieAfter) {
        this.kill();
        throw STOP;
      }
    };
    const send = async (msg: R, isResult: boolean) => {
      if (gone()) throw STOP;
      if (isResult) faultDue();
      if (isResult && f.delayMs) await sleep(f.delayMs);
      else await turn();
      if (gone()) throw STOP;
      call.write(msg);
      if (isResult) results++;
    };
    const out: Out<R> = {
      result: (msg) => (f.omit?.((msg as { event?: { value?: { id?: string } } }).event?.value?.id ?? "") ? Promise.resolve() : send(msg, true)),
      send: (msg) => send(msg, false),
      get cancelled() {
        return gone();
      },
    };
    let release!: () => void;
    const turnTaken = this.busy;
    this.busy = new Promise((r) => (release = r));
    try {
      await turnTaken;
      if (f.hang?.(info)) {
        await new Promise<void>((resolve) => {
          if (gone()) return resolve();
          call.once("cancelled", () => resolve());
          this.waiters.add(resolve);
        });
        return;
      }
      await body(call.request, out);
      if (gone()) return;
      faultDue();
      call.end();
    } catch (e) {
      if (e === STOP || gone()) return;
      const err = e as { code?: unknown; details?: string; message?: string; name?: string };
      call.emit("error", typeof err.code === "number" ? err : rpcError(status.INTERNAL, `${err.name ?? "Error"}: ${err.message ?? String(e)}`));
    } finally {
      release();
    }
  }

  // -- image generator ---------------------------------------------------------------------------

  private async generate(req: GenerateRequest, out: Out<GenerateResponse>): Promise<void> {
    let done = 0;
    for (const item of req.items) {
      const problem = !item.id
        ? "item has no id"
        : !item.prompt.trim()
          ? "prompt is empty"
          : item.steps <= 0
            ? `steps must be positive, got ${item.steps}`
            : item.width % 8 || item.height % 8
              ? `size ${item.width}x${item.height} must be positive multiples of 8`
              : item.guidanceScale < 0
                ? `guidance_scale must be >= 0, got ${item.guidanceScale}`
                : undefined;
      const error = asItemError(this.faults.itemError?.(item.id)) ?? (problem ? itemError("invalid_input", problem) : undefined);
      if (error) {
        await out.result({ event: { $case: "image", value: { id: item.id, image: undefined, width: 0, height: 0, defects: [], error, seconds: 0 } } });
      } else {
        const width = item.width || 32;
        const height = item.height || 32;
        const defects = this.faults.defects?.(item.id) ?? [];
        const png = this.image(item, width, height, defects.includes(ImageDefect.IMAGE_DEFECT_ALL_BLACK));
        const image: Blob = req.output === OutputMode.OUTPUT_MODE_INLINE ? { kind: { $case: "inline", value: png } } : { kind: { $case: "ref", value: putArtifact(this.store, png, "image/png") } };
        await out.result({ event: { $case: "image", value: { id: item.id, image, width, height, defects, error: undefined, seconds: 0.001 } } });
      }
      done++;
      await out.send({ event: { $case: "progress", value: { done, total: req.items.length, unit: "images" } } });
    }
  }

  private image(item: GenerateRequest["items"][number], width: number, height: number, black: boolean): Buffer {
    const rgb = new Uint8Array(width * height * 3);
    if (!black) {
      const h = createHash("sha256").update(JSON.stringify([this.modelKey, item.seed, item.prompt, item.negativePrompt, item.guidanceScale, item.steps, width, height])).digest();
      let x = h.readUInt32BE(0) || 1;
      const base = [h[4]!, h[5]!, h[6]!];
      for (let y = 0; y < height; y++) {
        for (let c = 0; c < width; c++) {
          for (let ch = 0; ch < 3; ch++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            x >>>= 0;
            const gradient = ch === 0 ? (c * 255) / width : ch === 1 ? (y * 255) / height : 128;
            rgb[(y * width + c) * 3 + ch] = (base[ch]! + gradient + (x & 31)) & 0xff;
          }
        }
      }
    }
    return encodePng(width, height, rgb);
  }

  // -- image scorer ------------------------------------------------------------------------------

  private async scoreImages(req: ImageScorerServiceScoreRequest, out: Out<ImageScorerServiceScoreResponse>): Promise<void> {
    let done = 0;
    for (const item of req.items) {
      let error = asItemError(this.faults.itemError?.(item.id));
      let imageSha = "";
      if (!error) ({ imageSha, error } = imageOf(this.store, item.image));
      if (error) {
        await out.result({ event: { $case: "score", value: { id: item.id, score: 0, components: {}, error } } });
      } else {
        const cosine = unit(this.modelKey, item.prompt, imageSha) * 0.3;
        const score = this.faults.score?.(item.id) ?? 100 * cosine;
        await out.result({ event: { $case: "score", value: { id: item.id, score, components: { cosine, logit_scale: 100 }, error: undefined } } });
      }
      done++;
    }
    await out.send({ event: { $case: "progress", value: { done, total: req.items.length, unit: "images" } } });
  }

  // -- responder ---------------------------------------------------------------------------------

  private async respond(req: RespondRequest, out: Out<RespondResponse>): Promise<void> {
    const total = req.items.reduce((n, it) => n + Math.max(1, it.decoding?.numSamples ?? 1), 0);
    let done = 0;
    for (const item of req.items) {
      const samples = Math.max(1, item.decoding?.numSamples ?? 1);
      const budget = item.decoding?.maxNewTokens || 256;
      let error = asItemError(this.faults.itemError?.(item.id));
      let imageSha = "";
      if (!error) ({ imageSha, error } = imageOf(this.store, item.image));
      const limit = this.faults.contextChars;
      if (!error && limit !== undefined && item.instruction.length > limit) {
        error = itemError("context_too_long", `prompt of ${item.instruction.length} tokens plus max_new_tokens ${budget} exceeds the model's context of ${limit}`);
      }
      for (let k = 0; k < samples; k++) {
        if (error) {
          await out.result({ event: { $case: "response", value: { id: item.id, sampleIndex: k, text: "", numTokens: 0, finishReason: "error", error } } });
        } else if (this.faults.empty?.(item.id, k)) {
          await out.result({ event: { $case: "response", value: { id: item.id, sampleIndex: k, text: "", numTokens: 0, finishReason: "stop", error: undefined } } });
        } else {
          const fixed = this.faults.answer?.(item.id, k);
          const { text, tokens, finish } = fixed !== undefined ? { text: fixed, tokens: fixed.split(/\s+/).length, finish: "stop" } : this.answer(item, k, imageSha, budget);
          await out.result({ event: { $case: "response", value: { id: item.id, sampleIndex: k, text, numTokens: tokens, finishReason: finish, error: undefined } } });
        }
        done++;
      }
      await out.send({ event: { $case: "progress", value: { done, total, unit: "answers" } } });
    }
  }

  private answer(item: RespondItem, sample: number, imageSha: string, budget: number): { text: string; tokens: number; finish: string } {
    const seed = sample === 0 ? item.seed : unit(item.seed, sample);
    const key = [this.modelKey, seed, item.instruction, imageSha, item.decoding?.doSample ? [item.decoding.temperature, item.decoding.topP, item.decoding.topK] : null];
    const wanted = 4 + Math.floor(unit(...key, "length") * 8);
    const n = Math.min(wanted, budget);
    const words = Array.from({ length: n }, (_, i) => VOCABULARY[Math.floor(unit(...key, i) * VOCABULARY.length)]!);
    const text = `${words.join(" ")}.`.replace(/^./, (c) => c.toUpperCase());
    return { text, tokens: n, finish: n < budget ? "stop" : "length" };
  }

  // -- response scorer ---------------------------------------------------------------------------

  private async scoreResponses(req: ResponseScorerServiceScoreRequest, out: Out<ResponseScorerServiceScoreResponse>): Promise<void> {
    const judge = this.spec.options.type === "vlm-judge";
    let done = 0;
    for (const item of req.items) {
      let error = asItemError(this.faults.itemError?.(item.id)) ?? (item.answer.trim() || req.scoreEmptyAnswers ? undefined : itemError("empty_answer", "the answer is empty"));
      let imageSha = "";
      if (!error && judge) ({ imageSha, error } = imageOf(this.store, item.image));
      if (error) {
        await out.result({ event: { $case: "score", value: { id: item.id, score: 0, components: {}, error } } });
      } else {
        const u = unit(this.modelKey, item.question, item.answer, imageSha);
        const score = this.faults.score?.(item.id) ?? (judge ? u : 4 * u - 2);
        const components: Record<string, number> = judge ? { p_yes: score, p_no: 1 - score } : { reward: score };
        await out.result({ event: { $case: "score", value: { id: item.id, score, components, error: undefined } } });
      }
      done++;
    }
    await out.send({ event: { $case: "progress", value: { done, total: req.items.length, unit: "answers" } } });
  }

  // -- DPO trainer -------------------------------------------------------------------------------

  private async train(req: TrainRequest, out: Out<TrainResponse>): Promise<void> {
    // What the config requires has no fallback (dpo_trainer.py's check_request).
    const required: [string, unknown][] = [
      ["checkpoint_dir", req.checkpointDir],
      ["dpo.beta", req.dpo?.beta],
      ["optim.learning_rate", req.optim?.learningRate],
      ["lora.r", req.lora?.r],
      ["lora.alpha", req.lora?.alpha],
    ];
    const missing = required.filter(([, v]) => !v).map(([k]) => k);
    if (missing.length) throw rpcError(status.INVALID_ARGUMENT, `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} required`);
    const o = req.optim;
    if (o && (o.precision === "bf16" || o.precision === "fp16")) throw rpcError(status.INVALID_ARGUMENT, `precision ${o.precision} needs a CUDA device; use fp32 on CPU`);
    const data = readBlob(this.store, req.dataset);
    const rows = data
      .toString()
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { images?: string[] });
    if (rows.length === 0) throw rpcError(status.INVALID_ARGUMENT, "the dataset has no pairs");
    for (const p of new Set(rows.flatMap((r) => r.images ?? []))) {
      const path = isAbsolute(p) ? p : join(req.imageRoot, p);
      if (!existsSync(path)) throw rpcError(status.INVALID_ARGUMENT, `dataset image not found: ${path}`);
    }
    const perEpoch = Math.ceil(rows.length / ((o?.batchSize || 1) * (o?.gradAccumulation || 1)));
    const total = o?.maxSteps && o.maxSteps > 0 ? o.maxSteps : (o?.epochs || 1) * perEpoch;
    const every = req.checkpointEvery || 50;
    const key = [this.modelKey, sha256(data), req.seed, req.lora, req.dpo, o];
    mkdirSync(req.checkpointDir, { recursive: true });
    const save = (step: number) => {
      const dir = join(req.checkpointDir, `checkpoint-${step}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "trainer_state.json"), `${JSON.stringify({ global_step: step, max_steps: total })}\n`);
      return dir;
    };
    const history: Record<string, number>[] = [];
    const start = req.resume ? latestCheckpoint(req.checkpointDir) : 0;
    let last = start;
    try {
      for (let step = start + 1; step <= total; step++) {
        if (out.cancelled) throw STOP;
        const u = unit(...key, step);
        const margin = 0.05 * step + 0.1 * (u - 0.5);
        const metrics = {
          loss: Math.max(0.01, 0.6931 - 0.02 * step + 0.01 * u),
          "rewards/chosen": margin / 2,
          "rewards/rejected": -margin / 2,
          "rewards/margins": margin,
          "rewards/accuracies": margin > 0 ? 1 : 0,
          learning_rate: o!.learningRate * (1 - (step - 1) / total),
        };
        history.push({ step, ...metrics });
        await out.send({ event: { $case: "progress", value: { done: step, total, unit: "steps" } } });
        await out.result({ event: { $case: "step", value: { step, epoch: step / perEpoch, metrics } } });
        last = step;
        if (step % every === 0 || step === total) {
          const path = save(step);
          await out.send({ event: { $case: "checkpoint", value: { step, path } } });
        }
      }
    } catch (e) {
      // A cancelled training stops at a step boundary and saves, as the Python trainer does;
      // a killed one saves nothing.
      if (e === STOP && !this.dead && last > start) save(last);
      throw e;
    }
    const weights = Array.from({ length: 8 }, (_, i) => unit(...key, "weight", i) - 0.5);
    const adapter = putArtifact(this.store, safetensors(weights, { format: "pt" }), "application/vnd.safetensors");
    const config = {
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: req.lora!.r,
      lora_alpha: req.lora!.alpha,
      lora_dropout: req.lora?.dropout ?? 0,
      target_modules: req.lora?.targetModules.length ? req.lora.targetModules : ".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj)",
      base_model_name_or_path: this.spec.id || this.spec.path,
    };
    const adapterConfig = putArtifact(this.store, Buffer.from(`${JSON.stringify(config, null, 2)}\n`), "application/json");
    const metricsRef = putArtifact(this.store, Buffer.from(history.map((h) => `${JSON.stringify(h)}\n`).join("")), "application/jsonl");
    await out.send({ event: { $case: "result", value: { adapter, adapterConfig, metrics: metricsRef, steps: total, interrupted: false } } });
  }

  // -- evaluator ---------------------------------------------------------------------------------

  /** MMHal-Bench as the real reader answers it: question ids are the template rows' 0-based positions; the judging is the orchestrator's. */
  private async evaluateMmhal(req: EvaluateRequest, out: Out<EvaluateResponse>): Promise<void> {
    const rows = JSON.parse(readBlob(this.store, req.questions).toString()) as { question: string; image_src: string }[];
    const lines: string[] = [];
    for (const [i, r] of rows.entries()) {
      const path = join(req.imageRoot, r.image_src.slice(r.image_src.lastIndexOf("/") + 1));
      if (!existsSync(path)) throw rpcError(status.INVALID_ARGUMENT, `benchmark image ${path}: not found`);
      const answer = `It shows ${VOCABULARY[Math.floor(unit(this.modelKey, req.adapterDir, r.question) * VOCABULARY.length)]!}.`;
      lines.push(JSON.stringify({ question_id: String(i), answer }));
      await out.result({ event: { $case: "answer", value: { questionId: String(i), answer, parsed: "" } } });
    }
    const ref = putArtifact(this.store, Buffer.from(lines.map((l) => `${l}\n`).join("")), "application/jsonl");
    await out.send({ event: { $case: "result", value: { metrics: { questions: rows.length }, answers: ref } } });
  }

  private async evaluate(req: EvaluateRequest, out: Out<EvaluateResponse>): Promise<void> {
    if (req.benchmark === "mmhal") return this.evaluateMmhal(req, out);
    if (req.benchmark !== "pope") throw rpcError(status.INVALID_ARGUMENT, `unknown benchmark '${req.benchmark}'; known: pope, mmhal`);
    const text = readBlob(this.store, req.questions).toString().trim();
    const rows = (text.startsWith("[") ? (JSON.parse(text) as unknown[]) : text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown)) as Record<string, unknown>[];
    rows.forEach((r, i) => {
      const missing = ["question_id", "image", "text", "label"].filter((k) => !(k in r));
      if (missing.length) throw rpcError(status.INVALID_ARGUMENT, `POPE row ${i + 1} lacks ${missing.join(", ")}`);
    });
    let adapter = "";
    if (req.adapterDir) {
      if (!existsSync(join(req.adapterDir, "adapter_config.json"))) throw rpcError(status.INVALID_ARGUMENT, `no LoRA adapter in ${req.adapterDir}`);
      adapter = sha256(readFileSync(join(req.adapterDir, "adapter_model.safetensors")));
    }
    const batch = req.maxBatchSize || 8;
    const labels: string[] = [];
    const parsed: string[] = [];
    const answers: string[] = [];
    for (let startAt = 0; startAt < rows.length; startAt += batch) {
      for (const r of rows.slice(startAt, startAt + batch)) {
        const image = String(r.image);
        const path = isAbsolute(image) ? image : join(req.imageRoot, image);
        if (!existsSync(path)) throw rpcError(status.INVALID_ARGUMENT, `benchmark image ${path}: not found`);
        const u = unit(this.modelKey, adapter, r.question_id, r.text);
        const answer = u < 0.45 ? "Yes, there is." : u < 0.9 ? "No." : "I cannot tell.";
        const p = parseYesNo(answer);
        labels.push(String(r.label).toLowerCase());
        parsed.push(p);
        answers.push(JSON.stringify({ answer, label: r.label, parsed: p, question_id: r.question_id }));
        await out.result({ event: { $case: "answer", value: { questionId: String(r.question_id), answer, parsed: p } } });
      }
      const progress: Progress = { done: parsed.length, total: rows.length, unit: "questions" };
      await out.send({ event: { $case: "progress", value: progress } });
    }
    const ref = putArtifact(this.store, Buffer.from(answers.map((a) => `${a}\n`).join("")), "application/jsonl");
    await out.send({ event: { $case: "result", value: { metrics: popeMetrics(labels, parsed), answers: ref } } });
  }
}
