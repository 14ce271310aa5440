// The remote runtime against workers started separately on loopback, with TLS and a token.
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { WorkerStartError } from "../../src/errors.js";
import { WorkerKind } from "../../src/gen/pdsdpo/v1/common.js";
import { WorkerClient } from "../../src/workers/clients.js";
import { RemoteRuntime } from "../../src/workers/remote-runtime.js";
import { ROOT, tempDir } from "../helpers.js";

const TOKEN_ENV = "PDS_DPO_TEST_WORKER_TOKEN";

// One real worker started in beforeAll (up to 25 s beside other test files); the first test waits for its load.
describe("remote runtime", { timeout: 150_000 }, () => {
  const dir = tempDir("pdsdpo-remote-");
  let proc: ResultPromise | undefined;
  let endpoint = "";

  beforeAll(async () => {
    // A self-signed certificate for 127.0.0.1, and a worker serving TLS with a token.
    await execa("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]);
    proc = execa(
      join(ROOT, ".venv/bin/python"),
      ["-m", "pds_dpo_workers", "serve", "--kind", "image-scorer", "--model", '{"source":"MODEL_SOURCE_TINY","id":"clip-scorer"}', "--store", dir, "--port", "0", "--cpu-threads", "1", "--tls-cert", join(dir, "cert.pem"), "--tls-key", join(dir, "key.pem")],
      { env: { PDS_DPO_WORKER_TOKEN: "right-token", HF_HUB_OFFLINE: "1" }, buffer: false, reject: false, stderr: "ignore" },
    );
    endpoint = await new Promise<string>((resolve) => {
      proc!.stdout!.on("data", (c: Buffer) => {
        const m = /"address": "([^"]+)"/.exec(c.toString());
        if (m) resolve(m[1]!);
      });
    });
  });

  afterAll(async () => {
    proc?.kill("SIGTERM");
    await proc;
  });

  const request = (kind: string, token?: string) => {
    if (token === undefined) delete process.env[TOKEN_ENV];
    else process.env[TOKEN_ENV] = token;
    const config = WorkerSchema.parse({
      kind,
      model: { source: "tiny", name: "clip-scorer" },
      runtime: { type: "remote", endpoints: [endpoint], tls: { ca: join(dir, "cert.pem") }, token_env: TOKEN_ENV, start_timeout_s: 60 },
    });
    return { name: "pick", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "pick.log") };
  };

  it("connects over TLS with the token: healthy, described, usable", async () => {
    const handle = await new RemoteRuntime().start(request("image-scorer", "right-token"));
    expect(handle.runtimeInfo).toEqual({ type: "remote", endpoint, tls: true, token: true });
    const client = new WorkerClient("pick", handle.address, handle.connection);
    try {
      expect((await client.describe()).kind).toBe(WorkerKind.WORKER_KIND_IMAGE_SCORER);
    } finally {
      client.close();
    }
    expect(await handle.stop()).toEqual({ exitCode: 0, signal: null });
  });

  it("a wrong token is a clear authentication error", async () => {
    const err = await new RemoteRuntime().start(request("image-scorer", "wrong-token")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toBe(`worker 'pick' at ${endpoint}: authentication failed: the worker refused the bearer token from ${TOKEN_ENV}`);
  });

  it("a worker of another kind is refused", async () => {
    const err = await new RemoteRuntime().start(request("image-generator", "right-token")).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `worker 'pick' at ${endpoint}: serves a WORKER_KIND_IMAGE_SCORER with model 'clip-scorer', but this worker is a WORKER_KIND_IMAGE_GENERATOR with model 'clip-scorer'; refusing it`,
    );
  });

  it("off loopback, TLS is required by the config and a token at start", async () => {
    expect(() => WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "x" }, runtime: { type: "remote", endpoints: ["10.0.0.5:50051"] } })).toThrow(/not on loopback: set runtime.tls/);
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "x" }, runtime: { type: "remote", endpoints: ["worker.example:50051"], tls: { ca: "ca.pem" }, token_env: TOKEN_ENV } });
    delete process.env[TOKEN_ENV];
    const err = await new RemoteRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`worker 'w' at worker.example:50051: not on loopback, so a bearer token is required; set ${TOKEN_ENV}`);
  });

  // Last: it stops the worker's process (and lets it go on after).
  it("a worker that stops answering (SIGSTOP: a vanished host) is noticed by keepalive within seconds, not at the call's deadline", async () => {
    const handle = await new RemoteRuntime().start(request("image-scorer", "right-token"));
    const client = new WorkerClient("pick", handle.address, { ...handle.connection, keepaliveMs: 2000 });
    try {
      expect(await client.checkHealth(10_000)).toBeDefined();
      process.kill(proc!.pid!, "SIGSTOP");
      const t0 = Date.now();
      // A deadline of two minutes; keepalive (a ping every 2 s, 2 s to answer) ends the call long before.
      const err = await client.checkHealth(120_000).catch((e: unknown) => e);
      expect(String(err)).toMatch(/UNAVAILABLE|keepalive/i);
      expect(Date.now() - t0).toBeLessThan(60_000);
    } finally {
      process.kill(proc!.pid!, "SIGCONT");
      client.close();
      await handle.stop();
    }
  });
});
