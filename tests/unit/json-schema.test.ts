// The emitted JSON Schema: never stale, every shipped config valid under an independent
// validator (ajv), and agreeing with `validate` on configs it accepts and rejects.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { caseless, experimentJsonSchema, experimentJsonSchemaText, SCHEMA_FILE } from "../../src/config/json-schema.js";
import { main } from "../../src/cli/main.js";
import { MINIMAL_EXPERIMENT, ROOT, tempDir, writePrompts } from "../helpers.js";

const schemaValid = new Ajv({ strict: true, allErrors: true }).compile(JSON.parse(readFileSync(join(ROOT, SCHEMA_FILE), "utf8")));
const shipped = readdirSync(join(ROOT, "configs")).filter((f) => f.endsWith(".yaml"));
const base = MINIMAL_EXPERIMENT;

describe("configs/experiment.schema.json", () => {
  it("is the schema generated from src/config/schema.ts (else: run `npm run schema`)", () => {
    const fresh = experimentJsonSchemaText();
    expect(readFileSync(join(ROOT, SCHEMA_FILE), "utf8") === fresh, `${SCHEMA_FILE} is stale; run \`npm run schema\``).toBe(true);
  });

  it("is what `orchestrate schema` prints", async () => {
    let stdout = "";
    const code = await main(["schema"], { stdout: (t) => (stdout += t), stderr: () => {}, isTTY: false });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual(experimentJsonSchema());
  });

  it.each(shipped)("configs/%s names it on its first line and is valid under it", (file) => {
    const text = readFileSync(join(ROOT, "configs", file), "utf8");
    const first = text.split("\n")[0]!;
    const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    expect(m, `${file}: first line ${first}`).not.toBeNull();
    expect(join(dirname(join(ROOT, "configs", file)), m![1]!)).toBe(join(ROOT, SCHEMA_FILE));
    expect(existsSync(join(ROOT, SCHEMA_FILE))).toBe(true);
    const ok = schemaValid(parse(text));
    expect(schemaValid.errors ?? [], file).toEqual([]);
    expect(ok).toBe(true);
  });
});

describe("the schema agrees with validate", () => {
  // validate's own check (loadExperiment: the schema, cross references, the files named), on the
  // shipped file where it is, else on the text beside a prompts file.
  const dir = tempDir("pdsdpo-schema-");
  writePrompts(dir, 2);
  const both = (text: string, name: string) => {
    const schemaOk = schemaValid(parse(text)) as boolean;
    const shippedFile = join(ROOT, name);
    const file = name.startsWith("configs/") && readFileSync(shippedFile, "utf8") === text ? shippedFile : join(dir, "experiment.yaml");
    if (file !== shippedFile) writeFileSync(file, text);
    let issues: string[] = [];
    try {
      loadExperiment(file);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      issues = e.issues.map((i) => `${i.path}: ${i.message}`);
    }
    return { schemaOk, validateOk: issues.length === 0, issues };
  };
  const docker = (memory: string) => base.replace("model: {source: tiny, name: sd}\n", `model: {source: tiny, name: sd}\n    runtime: {type: docker, image: "pds-dpo/image-generator:1", memory: "${memory}"}\n`);
  const accepted: Record<string, string> = {
    ...Object.fromEntries(shipped.map((f) => [`configs/${f}`, readFileSync(join(ROOT, "configs", f), "utf8")])),
    "a minimal experiment": base,
    "defaults left out (seed)": base.replace(/^seed: .*\n/m, ""),
    "a docker memory size in capitals (a case-insensitive pattern)": docker("32G"),
    "a docker memory size": docker("512m"),
  };
  const rejected: Record<string, string> = {
    "an unknown top-level key": `${base}notes: hello\n`,
    "a seed of the wrong type": base.replace(/^seed: .*$/m, "seed: lots"),
    "an unknown worker kind": base.replace("kind: image-generator", "kind: image-painter"),
    "a worker name with capitals": base.replace(/^  sd:$/m, "  SD:"),
    "an unknown key in a worker": base.replace("kind: image-scorer", "kind: image-scorer\n    replica: 2"),
    "a docker memory size in words": docker("32 gigabytes"),
    "a negative step count": base.replace(/^    steps: \d+/m, "    steps: -1"),
  };

  it.each(Object.entries(accepted))("accepted by both: %s", (name, text) => {
    const r = both(text, name);
    expect(r.issues).toEqual([]);
    expect(r).toMatchObject({ schemaOk: true, validateOk: true });
  });

  it.each(Object.entries(rejected))("rejected by both: %s", (name, text) => {
    expect(text).not.toBe(base);
    expect(both(text, name)).toMatchObject({ schemaOk: false, validateOk: false });
  });
});

describe("caseless", () => {
  it("spells out a case-insensitive pattern, in classes and ranges too; escapes stay", () => {
    expect(caseless("^\\d+[bkmg]?$")).toBe("^\\d+[bBkKmMgG]?$");
    expect(caseless("a[a-z0-9_]\\w")).toBe("[aA][a-zA-Z0-9_]\\w");
    const re = new RegExp(caseless("^\\d+[bkmg]?$"));
    expect(["32g", "32G", "7"].every((s) => re.test(s))).toBe(true);
    expect(re.test("32x")).toBe(false);
  });
});
