#!/usr/bin/env node
// Writes configs/experiment.schema.json from the zod schema (via the built dist/; `npm run
// schema` builds first). tests/unit/json-schema.test.ts fails while the file is stale.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { SCHEMA_FILE, experimentJsonSchemaText } = await import(join(root, "dist/config/json-schema.js"));
writeFileSync(join(root, SCHEMA_FILE), experimentJsonSchemaText());
console.log(`wrote ${SCHEMA_FILE}`);
