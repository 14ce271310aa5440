// Any worker RPC by name, without generated code: proto/ loaded at run time with
// @grpc/proto-loader, and each message converted between its proto3 JSON form and the wire by
// walking its descriptor. Requests are checked field by field (unknown fields, wrong types,
// two members of one oneof) because the loader's own conversion drops or coerces them silently.
import { join } from "node:path";
import { readdirSync } from "node:fs";
import { loadSync, type MessageTypeDefinition, type MethodDefinition, type PackageDefinition } from "@grpc/proto-loader";
import { PROJECT_ROOT } from "../util/project.js";

/** The project's protos: every pdsdpo/v1 file and the standard health service. */
export function loadProtos(root = PROJECT_ROOT): PackageDefinition {
  const own = readdirSync(join(root, "proto/pdsdpo/v1")).filter((f) => f.endsWith(".proto")).sort().map((f) => `pdsdpo/v1/${f}`);
  // keepCase: the loader's (de)serializers use the proto field names; JSON names are mapped here.
  return loadSync([...own, "grpc/health/v1/health.proto"], { includeDirs: [join(root, "proto"), join(root, "third_party/proto")], keepCase: true });
}

// The parts of google.protobuf.DescriptorProto the loader gives (field names as it spells them).
interface FieldDesc {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  oneofIndex: number;
  proto3Optional: boolean;
}
interface MessageDesc {
  name: string;
  field: FieldDesc[];
  nestedType: MessageDesc[];
  enumType: EnumDesc[];
  oneofDecl: { name: string }[];
  options: { mapEntry?: boolean } | null;
}
interface EnumDesc {
  name: string;
  value: { name: string; number: number }[];
}

/** A problem with the method named or with the request (naming the field path): a usage error to the CLI. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly part: "method" | "request" = "request",
  ) {
    super(message);
  }
}

export interface RpcMethod {
  /** Fully qualified: pdsdpo.v1.WorkerService. */
  service: string;
  method: string;
  /** The HTTP/2 path: /pdsdpo.v1.WorkerService/Describe. */
  path: string;
  responseStream: boolean;
  requestStream: boolean;
  requestType: string;
  responseType: string;
}

function services(pd: PackageDefinition): string[] {
  return Object.keys(pd).filter((k) => !("format" in pd[k]!));
}

/** `Service.Method`, `pkg.Service.Method` or `pkg.Service/Method`; a name that is none is one line listing what there is. */
export function findMethod(pd: PackageDefinition, name: string): RpcMethod {
  const m = /^(.+)[./]([A-Za-z_][A-Za-z0-9_]*)$/.exec(name.replace(/^\//, ""));
  const all = services(pd);
  if (!m) throw new RequestError(`'${name}' is no Service.Method (services: ${all.map((s) => s.split(".").pop()).join(", ")})`, "method");
  const [, svc, method] = m;
  const service = all.find((s) => s === svc || s.endsWith(`.${svc}`));
  if (!service) throw new RequestError(`unknown service '${svc}' (services: ${all.map((s) => s.split(".").pop()).join(", ")})`, "method");
  const def = (pd[service] as Record<string, MethodDefinition<object, object>>)[method!];
  if (!def) throw new RequestError(`unknown method '${method}' of ${service} (methods: ${Object.keys(pd[service]!).join(", ")})`, "method");
  const pkg = service.slice(0, service.lastIndexOf("."));
  const typeName = (t: MessageTypeDefinition<object, object>) => `${pkg}.${(t.type as unknown as MessageDesc).name}`;
  return { service, method: method!, path: def.path, responseStream: def.responseStream, requestStream: def.requestStream, requestType: typeName(def.requestType), responseType: typeName(def.responseType) };
}

/** lower_snake to lowerCamel, as protoc derives a field's JSON name. */
export const jsonName = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Looks up message and enum types by the (relative) names the descriptors use. */
class Types {
  constructor(private readonly pd: PackageDefinition) {}

  message(fullName: string): MessageDesc {
    const found = this.find(fullName);
    if (!found || found.kind !== "message") throw new Error(`no message type ${fullName}`);
    return found.desc as MessageDesc;
  }

  /** A field's type, resolved from the scope of the message that declares it (nested first, then outwards). */
  resolve(scope: string, typeName: string): { kind: "message" | "enum"; name: string; desc: MessageDesc | EnumDesc } {
    const name = typeName.replace(/^\./, "");
    const parts = scope.split(".");
    for (let i = parts.length; i >= 0; i--) {
      const candidate = [...parts.slice(0, i), name].join(".");
      const found = this.find(candidate);
      if (found) return { ...found, name: candidate };
    }
    throw new Error(`cannot resolve type ${typeName} from ${scope}`);
  }

  private find(fullName: string): { kind: "message" | "enum"; desc: MessageDesc | EnumDesc } | undefined {
    const top = this.pd[fullName] as { format?: string; type?: unknown } | undefined;
    if (top?.format?.includes("EnumDescriptorProto")) return { kind: "enum", desc: top.type as EnumDesc };
    if (top?.format?.includes("DescriptorProto")) return { kind: "message", desc: top.type as MessageDesc };
    // A nested type: Parent.Child.
    const cut = fullName.lastIndexOf(".");
    if (cut < 0) return undefined;
    const parent = this.find(fullName.slice(0, cut));
    if (parent?.kind !== "message") return undefined;
    const child = fullName.slice(cut + 1);
    const msg = (parent.desc as MessageDesc).nestedType.find((n) => n.name === child);
    if (msg) return { kind: "message", desc: msg };
    const en = (parent.desc as MessageDesc).enumType.find((n) => n.name === child);
    return en ? { kind: "enum", desc: en } : undefined;
  }
}

const INT32 = new Set(["TYPE_INT32", "TYPE_SINT32", "TYPE_SFIXED32"]);
const UINT32 = new Set(["TYPE_UINT32", "TYPE_FIXED32"]);
const INT64 = new Set(["TYPE_INT64", "TYPE_SINT64", "TYPE_SFIXED64"]);
const UINT64 = new Set(["TYPE_UINT64", "TYPE_FIXED64"]);
const FLOAT = new Set(["TYPE_DOUBLE", "TYPE_FLOAT"]);

const show = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);

/** Pure: a proto3 JSON value of a message type as the object the loader's serializer takes; a RequestError names the first bad field. */
export function fromProto3Json(pd: PackageDefinition, typeName: string, value: unknown): Record<string, unknown> {
  const types = new Types(pd);
  const message = (scope: string, desc: MessageDesc, v: unknown, path: string): Record<string, unknown> => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new RequestError(`${path || "the request"}: expected a JSON object (${scope}), got ${show(v)}`);
    const out: Record<string, unknown> = {};
    const setOneofs = new Map<number, string>();
    for (const [key, item] of Object.entries(v)) {
      const field = desc.field.find((f) => f.name === key || jsonName(f.name) === key);
      const at = path ? `${path}.${key}` : key;
      if (!field) throw new RequestError(`${at}: unknown field of ${scope} (fields: ${desc.field.map((f) => jsonName(f.name)).join(", ") || "none"})`);
      if (item === null) continue;
      if (oneofMembers(pd).has(`${scope}.${field.name}`)) {
        const other = setOneofs.get(field.oneofIndex);
        if (other) throw new RequestError(`${at}: ${other} is set too; they are one of ${desc.oneofDecl[field.oneofIndex]!.name}`);
        setOneofs.set(field.oneofIndex, key);
      }
      out[field.name] = fieldValue(scope, field, item, at);
    }
    return out;
  };
  const fieldValue = (scope: string, f: FieldDesc, v: unknown, path: string): unknown => {
    if (f.label === "LABEL_REPEATED") {
      const entry = f.type === "TYPE_MESSAGE" ? types.resolve(scope, f.typeName) : undefined;
      if (entry && (entry.desc as MessageDesc).options?.mapEntry) {
        if (v === null || typeof v !== "object" || Array.isArray(v)) throw new RequestError(`${path}: expected a JSON object (a map), got ${show(v)}`);
        const [k, val] = (entry.desc as MessageDesc).field;
        const out: Record<string, unknown> = {};
        for (const [mk, mv] of Object.entries(v)) {
          if (k!.type !== "TYPE_STRING") single(entry.name, k!, mk, `${path}[${show(mk)}]`);
          out[mk] = single(entry.name, val!, mv, `${path}[${show(mk)}]`);
        }
        return out;
      }
      if (!Array.isArray(v)) throw new RequestError(`${path}: expected a JSON array, got ${show(v)}`);
      return v.map((x, i) => single(scope, f, x, `${path}[${i}]`));
    }
    return single(scope, f, v, path);
  };
  const single = (scope: string, f: FieldDesc, v: unknown, path: string): unknown => {
    const bad = (what: string) => new RequestError(`${path}: expected ${what}, got ${show(v)}`);
    if (f.type === "TYPE_MESSAGE") {
      const t = types.resolve(scope, f.typeName);
      return message(t.name, t.desc as MessageDesc, v, path);
    }
    if (f.type === "TYPE_ENUM") {
      const t = types.resolve(scope, f.typeName).desc as EnumDesc;
      const byName = t.value.find((x) => x.name === v);
      if (byName) return byName.name;
      if (typeof v === "number" && Number.isInteger(v)) return v;
      throw bad(`one of ${t.value.map((x) => x.name).join(", ")}`);
    }
    if (f.type === "TYPE_STRING") {
      if (typeof v !== "string") throw bad("a string");
      return v;
    }
    if (f.type === "TYPE_BOOL") {
      if (typeof v !== "boolean") throw bad("true or false");
      return v;
    }
    if (f.type === "TYPE_BYTES") {
      if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw bad("base64 bytes");
      return Buffer.from(v.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    }
    if (FLOAT.has(f.type)) {
      if (typeof v === "number") return v;
      if (v === "NaN" || v === "Infinity" || v === "-Infinity") return Number(v);
      if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
      throw bad("a number");
    }
    const signed = INT32.has(f.type) || INT64.has(f.type);
    const wide = INT64.has(f.type) || UINT64.has(f.type);
    if (!INT32.has(f.type) && !UINT32.has(f.type) && !wide) throw new Error(`unsupported field type ${f.type}`);
    const text = typeof v === "number" ? (Number.isSafeInteger(v) ? String(v) : "") : typeof v === "string" ? v : "";
    if (!/^-?\d+$/.test(text)) throw bad(`an integer${wide ? " (a number or a decimal string)" : ""}`);
    const n = BigInt(text);
    const [lo, hi] = wide ? (signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n]) : signed ? [-(2n ** 31n), 2n ** 31n - 1n] : [0n, 2n ** 32n - 1n];
    if (n < lo || n > hi) throw bad(`an integer from ${lo} to ${hi}`);
    return wide ? text : Number(n);
  };
  return message(typeName, types.message(typeName), value, "");
}

let descriptorProto: PackageDefinition | undefined;
const membersCache = new WeakMap<PackageDefinition, Set<string>>();

/**
 * `<message>.<field>` of every member of a real oneof. The loader's descriptors give every
 * field an oneofIndex (0 when unset); the files' own descriptors, decoded without defaults,
 * have it on members only.
 */
function oneofMembers(pd: PackageDefinition): Set<string> {
  const cached = membersCache.get(pd);
  if (cached) return cached;
  descriptorProto ??= loadSync("google/protobuf/descriptor.proto", { keepCase: true, defaults: false });
  const files = descriptorProto["google.protobuf.FileDescriptorProto"] as MessageTypeDefinition<object, object>;
  type Raw = { name: string; field?: { name: string; oneofIndex?: number; proto3Optional?: boolean }[]; nestedType?: Raw[] };
  const members = new Set<string>();
  const walk = (prefix: string, m: Raw) => {
    for (const f of m.field ?? []) if (f.oneofIndex !== undefined && !f.proto3Optional) members.add(`${prefix}${m.name}.${f.name}`);
    for (const n of m.nestedType ?? []) walk(`${prefix}${m.name}.`, n);
  };
  const seen = new Set<Buffer>();
  for (const entry of Object.values(pd)) {
    for (const buf of (entry as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos ?? []) {
      if (seen.has(buf)) continue;
      seen.add(buf);
      const file = files.deserialize(buf) as { package?: string; messageType?: Raw[] };
      for (const m of file.messageType ?? []) walk(file.package ? `${file.package}.` : "", m);
    }
  }
  membersCache.set(pd, members);
  return members;
}

/** Pure: a decoded message (the loader's object, proto field names) as proto3 JSON: lowerCamel names, int64 as strings, enums by name, bytes base64, defaults left out. */
export function toProto3Json(pd: PackageDefinition, typeName: string, value: Record<string, unknown>): Record<string, unknown> {
  const types = new Types(pd);
  const message = (scope: string, desc: MessageDesc, v: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const f of desc.field) {
      const x = v[f.name];
      if (x === undefined || x === null) continue;
      const json = fieldJson(scope, f, x);
      if (json !== undefined) out[jsonName(f.name)] = json;
    }
    return out;
  };
  const fieldJson = (scope: string, f: FieldDesc, v: unknown): unknown => {
    if (f.label === "LABEL_REPEATED") {
      const entry = f.type === "TYPE_MESSAGE" ? types.resolve(scope, f.typeName) : undefined;
      if (entry && (entry.desc as MessageDesc).options?.mapEntry) {
        const val = (entry.desc as MessageDesc).field[1]!;
        const out = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, single(entry.name, val, x, true)]));
        return Object.keys(out).length > 0 ? out : undefined;
      }
      const list = (v as unknown[]).map((x) => single(scope, f, x, true));
      return list.length > 0 ? list : undefined;
    }
    return single(scope, f, v, false);
  };
  const single = (scope: string, f: FieldDesc, v: unknown, keepDefault: boolean): unknown => {
    if (f.type === "TYPE_MESSAGE") {
      const t = types.resolve(scope, f.typeName);
      return message(t.name, t.desc as MessageDesc, v as Record<string, unknown>);
    }
    let out: unknown = v;
    if (f.type === "TYPE_ENUM") out = typeof v === "number" ? ((types.resolve(scope, f.typeName).desc as EnumDesc).value.find((x) => x.number === v)?.name ?? v) : v;
    else if (f.type === "TYPE_BYTES") out = Buffer.from(v as Uint8Array).toString("base64");
    else if (INT64.has(f.type) || UINT64.has(f.type)) out = String(v);
    else if (FLOAT.has(f.type) && typeof v === "number" && !Number.isFinite(v)) out = String(v);
    // proto3 leaves default values out (fields with explicit presence keep them).
    const isDefault = out === "" || out === 0 || out === false || out === "0" || (f.type === "TYPE_ENUM" && (types.resolve(scope, f.typeName).desc as EnumDesc).value[0]?.name === out);
    return isDefault && !keepDefault && !f.proto3Optional && !oneofMembers(pd).has(`${scope}.${f.name}`) ? undefined : out;
  };
  return message(typeName, types.message(typeName), value);
}

function codec(pd: PackageDefinition, typeName: string): MessageTypeDefinition<object, object> {
  const t = pd[typeName] as MessageTypeDefinition<object, object> | undefined;
  if (!t?.serialize) throw new Error(`no message type ${typeName}`);
  return t;
}

/** A message of a type from proto3 JSON to wire bytes; a RequestError names the first bad field. */
export function encodeJson(pd: PackageDefinition, typeName: string, json: unknown): Buffer {
  return codec(pd, typeName).serialize(fromProto3Json(pd, typeName, json));
}

/** A message of a type from wire bytes to proto3 JSON. */
export function decodeJson(pd: PackageDefinition, typeName: string, bytes: Uint8Array): Record<string, unknown> {
  return toProto3Json(pd, typeName, codec(pd, typeName).deserialize(Buffer.from(bytes)) as Record<string, unknown>);
}

/** Every method of every service: what the wire test goes through. */
export function allMethods(pd: PackageDefinition): RpcMethod[] {
  return services(pd).flatMap((s) => Object.keys(pd[s]!).map((m) => findMethod(pd, `${s}.${m}`)));
}

/**
 * Messages of a type with every field set to a value other than its default, in proto3 JSON
 * (int64 as numbers, as ts-proto writes them): sample i sets the i-th member of each oneof,
 * so the samples together cover every field. The wire test encodes them with each side.
 */
export function sampleMessages(pd: PackageDefinition, typeName: string): Record<string, unknown>[] {
  const types = new Types(pd);
  const members = oneofMembers(pd);
  let widest = 1;
  const build = (scope: string, desc: MessageDesc, pick: number, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const byOneof = new Map<number, FieldDesc[]>();
    for (const f of desc.field) if (members.has(`${scope}.${f.name}`)) byOneof.set(f.oneofIndex, [...(byOneof.get(f.oneofIndex) ?? []), f]);
    for (const group of byOneof.values()) widest = Math.max(widest, group.length);
    for (const f of desc.field) {
      const group = byOneof.get(f.oneofIndex);
      if (members.has(`${scope}.${f.name}`) && group![pick % group!.length] !== f) continue;
      const v = fieldSample(scope, f, pick, depth);
      if (v !== undefined) out[jsonName(f.name)] = v;
    }
    return out;
  };
  const fieldSample = (scope: string, f: FieldDesc, pick: number, depth: number): unknown => {
    if (f.label === "LABEL_REPEATED") {
      const entry = f.type === "TYPE_MESSAGE" ? types.resolve(scope, f.typeName) : undefined;
      if (entry && (entry.desc as MessageDesc).options?.mapEntry) {
        const value = single(entry.name, (entry.desc as MessageDesc).field[1]!, pick, depth);
        return value === undefined ? undefined : { [`${f.name}-key`]: value };
      }
      const a = single(scope, f, pick, depth);
      const b = single(scope, f, pick + 1, depth);
      return a === undefined ? undefined : [a, b];
    }
    return single(scope, f, pick, depth);
  };
  const single = (scope: string, f: FieldDesc, pick: number, depth: number): unknown => {
    const k = f.number + pick;
    if (f.type === "TYPE_MESSAGE") {
      if (depth > 5) return undefined;
      const t = types.resolve(scope, f.typeName);
      return build(t.name, t.desc as MessageDesc, pick, depth + 1);
    }
    if (f.type === "TYPE_ENUM") {
      const values = (types.resolve(scope, f.typeName).desc as EnumDesc).value;
      return values[1 + (k % Math.max(1, values.length - 1))]?.name ?? values[0]!.name;
    }
    if (f.type === "TYPE_STRING") return `${f.name}-${k}`;
    if (f.type === "TYPE_BOOL") return true;
    if (f.type === "TYPE_BYTES") return Buffer.from([k, 1, 2, 255]).toString("base64");
    if (f.type === "TYPE_FLOAT") return k + 0.5;
    if (f.type === "TYPE_DOUBLE") return k + 0.125;
    if (INT64.has(f.type) || UINT64.has(f.type)) return 2 ** 40 + k;
    return INT32.has(f.type) && pick % 2 === 1 ? -k : k;
  };
  const desc = types.message(typeName);
  const first = build(typeName, desc, 0, 0);
  return [first, ...Array.from({ length: widest - 1 }, (_, i) => build(typeName, desc, i + 1, 0))];
}
