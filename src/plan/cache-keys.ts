// Pure: cache keys of DESIGN.md. key = sha256(canonical JSON of {op, params, worker
// fingerprint, input hashes, batch}). The batch is part of the key because outputs depend
// on it (on CPU, batch size 1 and 3 differ by ~1e-6, enough to flip an 8-bit pixel); the
// stages form batches from the plan alone, so an unchanged plan gives the same batches.
import { createHash } from "node:crypto";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** JSON with object keys sorted at every level and no whitespace: equal values, equal text. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`cannot key a non-finite number (${value})`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function digest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

/** What of a worker decides its outputs. */
export interface WorkerFingerprint {
  kind: string;
  model: { spec: unknown; resolvedRevision: string; weightsSha256: string };
  device: string;
  /** Settings of the runtime that change numerics (CPU threads). */
  threads: number | null;
  protocolVersion: string;
  /** Docker image digest, or the hash of the Python environment's installed distributions. */
  environment: string;
}

interface DescribedWorker {
  kind?: unknown;
  model?: { spec?: unknown; resolvedRevision?: string; weightsSha256?: string };
  device?: { type?: string; name?: string };
  protocolVersion?: string;
  pythonEnvHash?: string;
  imageDigest?: string;
}

/**
 * The fingerprint of a described worker, or null when a part of it cannot be known (no
 * weights hash, no environment hash): such a worker's items are never cached.
 */
export function workerFingerprint(info: DescribedWorker, runtime: Record<string, unknown>, threads: number | null = null): WorkerFingerprint | null {
  const weights = info.model?.weightsSha256 ?? "";
  const digestOfImage = typeof runtime.image_digest === "string" && runtime.image_digest ? runtime.image_digest : info.imageDigest || "";
  const environment = digestOfImage ? `image:${digestOfImage}` : info.pythonEnvHash ? `python:${info.pythonEnvHash}` : "";
  if (!weights || !environment || !info.protocolVersion) return null;
  return {
    kind: String(info.kind ?? ""),
    model: { spec: info.model?.spec ?? null, resolvedRevision: info.model?.resolvedRevision ?? "", weightsSha256: weights },
    device: `${info.device?.type ?? ""}:${info.device?.name ?? ""}`,
    threads,
    protocolVersion: info.protocolVersion,
    environment,
  };
}

export interface KeyParts {
  op: string;
  params: unknown;
  worker: WorkerFingerprint;
  /** sha256 of every input artifact (image, dataset). */
  inputs: string[];
  /** Digest of the whole batch the item is computed in (batchDigest). */
  batch: string;
}

export function itemKey(p: KeyParts): string {
  return digest({ v: 1, op: p.op, params: p.params, worker: p.worker, inputs: p.inputs, batch: p.batch });
}

/** The digest of a batch: the params and inputs of each of its items, in order. */
export function batchDigest(items: { params: unknown; inputs: string[] }[]): string {
  return digest(items.map((i) => [i.params, i.inputs]));
}

/** Keys of every item of one batch, in order. */
export function batchKeys(op: string, worker: WorkerFingerprint, items: { params: unknown; inputs: string[] }[]): string[] {
  const batch = batchDigest(items);
  return items.map((i) => itemKey({ op, params: i.params, worker, inputs: i.inputs, batch }));
}

/** A worker's configuration (model, runtime) as a digest: the journal remembers its last fingerprint under it. */
export function workerSpecDigest(workerConfig: unknown): string {
  return digest(workerConfig);
}

