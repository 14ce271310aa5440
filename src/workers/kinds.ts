import type { WorkerKindName } from "../config/schema.js";
import { WorkerKind, workerKindFromJSON } from "../gen/pdsdpo/v1/common.js";

/** Config kind name -> the wire enum, by the proto's naming rule (responder -> WORKER_KIND_RESPONDER), so a new kind adds no line here. */
export function kindEnum(kind: WorkerKindName): WorkerKind {
  const value = workerKindFromJSON(`WORKER_KIND_${kind.toUpperCase().replace(/-/g, "_")}`);
  if (value === WorkerKind.UNRECOGNIZED || value === WorkerKind.WORKER_KIND_UNSPECIFIED) throw new Error(`worker kind '${kind}' has no WorkerKind value in proto/pdsdpo/v1/common.proto`);
  return value;
}
