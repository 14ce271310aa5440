// I/O: report/index.html and report/diagnostics.json of a run directory.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildDiagnostics } from "./build.js";
import { renderReport, type GalleryItem } from "./html.js";
import { readRunRecords } from "./records.js";
import { sweepMarkdown } from "./sweep.js";

export const GALLERY_SIZE = 12;

/** The first n of xs, reading no further. */
function firstOf<T>(xs: Iterable<T>, n: number): T[] {
  const out: T[] = [];
  if (n <= 0) return out;
  for (const x of xs) if (out.push(x) >= n) break;
  return out;
}

export function writeReport(runDir: string): { html: string; json: string } {
  const records = readRunRecords(runDir);
  const diagnostics = buildDiagnostics(records);
  const gallery: GalleryItem[] = firstOf(records.pairs?.() ?? [], GALLERY_SIZE).map((p) => ({
    id: p.id,
    imageDataUri: `data:image/png;base64,${readFileSync(join(runDir, p.image)).toString("base64")}`,
    instruction: p.instruction,
    chosen: { text: p.chosen.text, score: p.chosen.score, model: p.chosenModel },
    rejected: { text: p.rejected.text, score: p.rejected.score, model: p.rejectedModel },
  }));
  const dir = join(runDir, "report");
  mkdirSync(dir, { recursive: true });
  const html = join(dir, "index.html");
  const json = join(dir, "diagnostics.json");
  writeFileSync(json, `${JSON.stringify(diagnostics, null, 2)}\n`);
  writeFileSync(html, renderReport(diagnostics, gallery));
  // A sweep's Table 3 beside eval/summary.md.
  if (diagnostics.sweep) {
    mkdirSync(join(runDir, "eval"), { recursive: true });
    writeFileSync(join(runDir, "eval", "sweep.md"), sweepMarkdown(diagnostics.sweep));
  }
  return { html, json };
}
