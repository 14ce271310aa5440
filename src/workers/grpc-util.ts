import { credentials, InterceptingCall, Metadata, status, type ChannelCredentials, type ChannelOptions, type ClientReadableStream, type Interceptor, type ServiceError } from "@grpc/grpc-js";
import { RpcError } from "../errors.js";

// gRPC's default 4 MiB receive limit is too small for inline images and large batches.
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
};
export const insecure = () => credentials.createInsecure();

export interface ConnectionOptions {
  credentials?: ChannelCredentials;
  /** The name the server's TLS certificate is checked against, when dialing it by address (a Service's pods). */
  serverName?: string;
  /** gRPC keepalive: ping this often; no answer within min(20 s, this) closes the connection and fails its calls. */
  keepaliveMs?: number;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
}

/** Adds the bearer token to every call (works with and without TLS, unlike call credentials). */
export function bearerInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata: Metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

export function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as ServiceError).code === "number" && "details" in e;
}

export function toRpcError(e: unknown, what: string): RpcError {
  if (isServiceError(e)) return new RpcError(`${what}: ${status[e.code]}: ${e.details}`, e.code, e);
  return new RpcError(`${what}: ${e instanceof Error ? e.message : String(e)}`, undefined, e);
}

export interface CallControl {
  /** Whole-call deadline in milliseconds. */
  deadlineMs: number;
  signal?: AbortSignal;
}

/** Iterates a server stream; the deadline travels with the call, abort cancels it on the worker. */
export async function* readStream<T>(start: (deadline: Date) => ClientReadableStream<T>, what: string, ctl: CallControl): AsyncGenerator<T> {
  const call = start(new Date(Date.now() + ctl.deadlineMs));
  const onAbort = () => call.cancel();
  ctl.signal?.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    for await (const msg of call) yield msg as T;
    finished = true;
  } catch (e) {
    throw toRpcError(e, what);
  } finally {
    ctl.signal?.removeEventListener("abort", onAbort);
    if (!finished) call.cancel();
  }
}
