#!/usr/bin/env node
// The `orchestrate` command. The TypeScript is compiled to dist/ by the setup script (`npm run build`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error("orchestrate: not built yet; run `bash scripts/setup.sh` (or `npm run build`) first");
  process.exit(2);
}
const { runProcess } = await import(entry.href);
await runProcess();
