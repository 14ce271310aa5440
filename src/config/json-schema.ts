// The experiment's JSON Schema, generated from the zod schema (the one source of truth) for
// editors (yaml-language-server) and other tools. It describes what a user writes: the input
// side (a field with a default may be left out), unknown keys refused. Cross-field rules (a
// worker a stage names must exist and be of the right kind, a model source's required fields)
// are zod refinements JSON Schema cannot carry: `orchestrate validate` checks those.
import { z } from "zod";
import { ExperimentSchema } from "./schema.js";

/** Where the generated schema is kept in the repository; the shipped configs point at it. */
export const SCHEMA_FILE = "configs/experiment.schema.json";

export function experimentJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ExperimentSchema, {
    io: "input",
    // draft-07: what editors' YAML and JSON language servers support best.
    target: "draft-07",
    // A zod type JSON Schema cannot express must fail here, not turn into "anything goes".
    unrepresentable: "throw",
    override: (ctx) => {
      // JSON Schema patterns have no flags: a case-insensitive regex is spelled out ([bB]), any other flag refused.
      const checks = (ctx.zodSchema._zod.def as { checks?: { _zod: { def: { format?: string; pattern?: RegExp } } }[] }).checks ?? [];
      const flagged = checks.map((c) => c._zod.def.pattern).filter((re): re is RegExp => re instanceof RegExp && re.flags !== "");
      for (const re of flagged) {
        if (re.flags !== "i" || ctx.jsonSchema.pattern !== re.source) throw new Error(`regex ${re}: flags JSON Schema cannot express`);
        ctx.jsonSchema.pattern = caseless(re.source);
      }
    },
  }) as Record<string, unknown>;
  const { $schema, ...rest } = schema;
  return {
    $schema,
    title: "PDS-DPO experiment",
    description: "experiment.yaml of the PDS-DPO orchestrator. Generated from src/config/schema.ts (npm run schema); cross-field rules are checked by `orchestrate validate`.",
    ...rest,
  };
}

/** Pure: a regex source that matches what `source` with the `i` flag matches (letters as [aA], in classes both cases). */
export function caseless(source: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === "\\") {
      out += c + (source[++i] ?? "");
      continue;
    }
    if (c === "[" && !inClass) inClass = true;
    else if (c === "]" && inClass) inClass = false;
    const d = source[i + 2];
    if (inClass && source[i + 1] === "-" && d !== undefined && d !== "]" && c.toLowerCase() !== c.toUpperCase()) {
      // A letter range: both cases' ranges.
      out += `${c.toLowerCase()}-${d.toLowerCase()}${c.toUpperCase()}-${d.toUpperCase()}`;
      i += 2;
      continue;
    }
    const lower = c.toLowerCase();
    const upper = c.toUpperCase();
    if (lower === upper) out += c;
    else if (inClass) out += lower + upper;
    else out += `[${lower}${upper}]`;
  }
  return out;
}

/** The schema file's text, as `npm run schema` writes it and the staleness test compares it. */
export function experimentJsonSchemaText(): string {
  return `${JSON.stringify(experimentJsonSchema(), null, 2)}\n`;
}
