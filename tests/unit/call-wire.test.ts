// `orchestrate call` converts JSON to the wire with proto/ loaded at run time; the orchestrator
// speaks through ts-proto's generated types. For every request and response message of every
// service, a fully filled sample encoded by one side must decode to the same message on the
// other, both ways; and bad requests are refused naming the field.
import { describe, expect, it } from "vitest";
import * as health from "../../src/gen/grpc/health/v1/health.js";
import * as common from "../../src/gen/pdsdpo/v1/common.js";
import * as dpoTrainer from "../../src/gen/pdsdpo/v1/dpo_trainer.js";
import * as evaluator from "../../src/gen/pdsdpo/v1/evaluator.js";
import * as imageGenerator from "../../src/gen/pdsdpo/v1/image_generator.js";
import * as imageScorer from "../../src/gen/pdsdpo/v1/image_scorer.js";
import * as responder from "../../src/gen/pdsdpo/v1/responder.js";
import * as responseScorer from "../../src/gen/pdsdpo/v1/response_scorer.js";
import * as worker from "../../src/gen/pdsdpo/v1/worker.js";
import { allMethods, decodeJson, encodeJson, findMethod, loadProtos, RequestError, sampleMessages } from "../../src/workers/proto-json.js";

interface MessageFns {
  encode(m: unknown): { finish(): Uint8Array };
  decode(b: Uint8Array): unknown;
  fromJSON(o: unknown): unknown;
  toJSON(m: unknown): unknown;
}
const generated = new Map<string, MessageFns>();
for (const [pkg, mod] of [["grpc.health.v1", health], ...[common, dpoTrainer, evaluator, imageGenerator, imageScorer, responder, responseScorer, worker].map((m) => ["pdsdpo.v1", m] as const)] as const) {
  for (const [name, value] of Object.entries(mod)) {
    if (value && typeof value === "object" && "encode" in value && "fromJSON" in value) generated.set(`${pkg}.${name}`, value as MessageFns);
  }
}

const pd = loadProtos();
const methods = allMethods(pd);
const messageTypes = [...new Set(methods.flatMap((m) => [m.requestType, m.responseType]))];

describe("call's runtime-loaded protos agree with the ts-proto types on the wire", () => {
  it("covers every service of proto/ and the health service", () => {
    expect(new Set(methods.map((m) => m.service.split(".").pop()))).toEqual(
      new Set(["WorkerService", "ImageGeneratorService", "ImageScorerService", "ResponderService", "ResponseScorerService", "DpoTrainerService", "EvaluatorService", "Health"]),
    );
  });

  it.each(messageTypes)("%s: encoded by one side, decoded by the other, both ways", (type) => {
    const ts = generated.get(type);
    expect(ts, `ts-proto has no ${type}`).toBeDefined();
    const samples = sampleMessages(pd, type);
    for (const sample of samples) {
      // The sample is a full message that ts-proto reads and writes back unchanged (no field unknown to it, none left at its default).
      const message = ts!.fromJSON(sample);
      expect(ts!.toJSON(message)).toEqual(sample);
      // proto-loader encodes, ts-proto decodes.
      expect(ts!.decode(encodeJson(pd, type, sample))).toEqual(message);
      // ts-proto encodes, proto-loader decodes (int64 as proto3 JSON strings, which ts-proto reads back).
      const json = decodeJson(pd, type, ts!.encode(message).finish());
      expect(ts!.fromJSON(json)).toEqual(message);
      expect(Object.keys(json)).toEqual(Object.keys(sample));
    }
    // Every field of the type appears in some sample (each oneof member in its own).
    const fields = new Set(samples.flatMap((s) => Object.keys(s)));
    expect(fields.size).toBe((pd[type] as unknown as { type: { field: unknown[] } }).type.field.length);
  });
});

describe("bad requests name the field", () => {
  const generate = findMethod(pd, "ImageGeneratorService.Generate");
  const refused = (json: unknown) => {
    try {
      encodeJson(pd, generate.requestType, json);
    } catch (e) {
      expect(e).toBeInstanceOf(RequestError);
      return (e as Error).message;
    }
    throw new Error("accepted");
  };

  it("unknown fields, wrong types, out-of-range integers, unknown enum values, two members of a oneof", () => {
    expect(refused({ itemz: [] })).toBe("itemz: unknown field of pdsdpo.v1.GenerateRequest (fields: items, output, maxBatchSize)");
    expect(refused({ items: [{ seed: "many" }] })).toBe('items[0].seed: expected an integer (a number or a decimal string), got "many"');
    expect(refused({ items: [{ id: 7 }] })).toBe("items[0].id: expected a string, got 7");
    expect(refused({ maxBatchSize: 2 ** 31 })).toBe("maxBatchSize: expected an integer from -2147483648 to 2147483647, got 2147483648");
    expect(refused({ items: {} })).toBe("items: expected a JSON array, got {}");
    expect(refused({ output: "OUTPUT_MODE_FAX" })).toMatch(/^output: expected one of OUTPUT_MODE_UNSPECIFIED, .*, got "OUTPUT_MODE_FAX"$/);
    expect(refused([])).toBe("the request: expected a JSON object (pdsdpo.v1.GenerateRequest), got []");
    expect(() => encodeJson(pd, "pdsdpo.v1.Blob", { ref: { sha256: "a" }, inline: "AAE=" })).toThrow("inline: ref is set too; they are one of kind");
  });

  it("snake_case and lowerCamel names are both read; unknown services and methods are named", () => {
    const a = encodeJson(pd, generate.requestType, { max_batch_size: 3 });
    expect(a).toEqual(encodeJson(pd, generate.requestType, { maxBatchSize: 3 }));
    expect(() => findMethod(pd, "PaintService.Paint")).toThrow(/^unknown service 'PaintService' \(services: .*WorkerService.*\)$/);
    expect(() => findMethod(pd, "WorkerService.Paint")).toThrow("unknown method 'Paint' of pdsdpo.v1.WorkerService (methods: Describe)");
    expect(findMethod(pd, "pdsdpo.v1.WorkerService/Describe").path).toBe("/pdsdpo.v1.WorkerService/Describe");
  });
});
