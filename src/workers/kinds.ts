import type { WorkerKindName } from "../config/schema.js";
import { WorkerKind } from "../gen/pdsdpo/v1/common.js";

/** Config kind names -> the wire enum. */
export const KIND_ENUM: Record<WorkerKindName, WorkerKind> = {
  "image-generator": WorkerKind.WORKER_KIND_IMAGE_GENERATOR,
  "image-scorer": WorkerKind.WORKER_KIND_IMAGE_SCORER,
  responder: WorkerKind.WORKER_KIND_RESPONDER,
  "response-scorer": WorkerKind.WORKER_KIND_RESPONSE_SCORER,
  "dpo-trainer": WorkerKind.WORKER_KIND_DPO_TRAINER,
  evaluator: WorkerKind.WORKER_KIND_EVALUATOR,
};
