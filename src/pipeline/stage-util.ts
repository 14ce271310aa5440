// Helpers shared by the stage executors.
import type { Blob } from "../gen/pdsdpo/v1/common.js";
import type { ArtifactInfo } from "../store/cas.js";
import type { RunningWorker, WorkerPool } from "./worker-pool.js";

/** A store artifact as a by-reference Blob. */
export function blobRef(a: ArtifactInfo): Blob {
  return { kind: { $case: "ref", value: { uri: a.uri, sha256: a.sha256, bytes: a.bytes, mediaType: a.mediaType } } };
}

/** Turns the RPC error of a worker that died into a crash naming the worker and its log. */
export async function* guarded<T>(pool: WorkerPool, worker: RunningWorker, what: string, stream: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (e) {
    throw await pool.explain(worker, e, what);
  }
}

/** Runs tasks together; the first failure aborts the rest and is the one thrown. */
export async function allOrAbort(tasks: Promise<void>[], abort: AbortController): Promise<void> {
  let first: unknown;
  await Promise.all(
    tasks.map((t) =>
      t.catch((e: unknown) => {
        if (first === undefined) first = e;
        abort.abort();
      }),
    ),
  );
  if (first !== undefined) throw first;
}
