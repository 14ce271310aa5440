// Pure: the self-contained report page (inline SVG and data-URI images; no script, no network).
import { HARD_NEGATIVE_CLASSES } from "./diagnostics.js";
import type { Diagnostics } from "./build.js";
import { barChart, esc, heatmapChart, histogramChart, lineChart } from "./svg.js";
import { sweepHtml } from "./sweep.js";
import { SMOKE_NOTE } from "../eval/summary.js";

export interface GalleryItem {
  id: string;
  imageDataUri: string;
  instruction: string;
  chosen: { text: string; score: number; model: string };
  rejected: { text: string; score: number; model: string };
}

const notRun = (what: string) => `<p class="not-run">${esc(what)}: not run</p>`;
const fig = (title: string, chart: string, note = "") => `<figure><figcaption>${esc(title)}</figcaption>${chart}${note ? `<p class="note">${esc(note)}</p>` : ""}</figure>`;

function reasons(title: string, name: string, counts: Record<string, number>): string {
  const entries = Object.entries(counts).filter(([, v]) => v > 0);
  if (entries.length === 0) return `<p>${esc(title)}: none</p>`;
  return fig(title, barChart(name, entries.map(([k]) => k), [{ name: "count", values: entries.map(([, v]) => v) }]));
}

export function renderReport(d: Diagnostics, gallery: GalleryItem[]): string {
  const stageRows = Object.entries(d.stages)
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td class="${esc(v.status)}">${esc(v.status)}</td><td>${esc(Object.entries(v.counts).map(([a, b]) => `${a}=${b}`).join(" "))}</td><td>${v.seconds === undefined ? "" : v.seconds.toFixed(1)}</td></tr>`)
    .join("");
  const parts: string[] = [];
  parts.push(`<h1>PDS-DPO run ${esc(d.run_id)}</h1><p>Status: <b>${esc(d.status)}</b></p><table><tr><th>stage</th><th>status</th><th>counts</th><th>seconds</th></tr>${stageRows}</table>`);
  const s = (v: number | null) => (v === null ? "" : v.toFixed(1));
  const workerRows = d.workers.map((w) => `<tr><td>${esc(w.worker)}</td><td>${esc(w.kind)}</td><td>${s(w.start_s)}</td><td>${s(w.ready_s)}</td><td>${s(w.stop_s)}</td></tr>`).join("");
  if (workerRows) parts.push(`<table class="workers"><tr><th>worker</th><th>kind</th><th>started (s)</th><th>ready (s)</th><th>stopped (s)</th></tr>${workerRows}</table>`);

  parts.push("<h2>Images</h2>");
  if (!d.images) parts.push(notRun("image stage"));
  else {
    const g = d.images.score_by_guidance;
    const labels = g.map((x) => String(x.scale));
    parts.push(fig("Mean image score by guidance scale", barChart("image-score-by-guidance", labels, [{ name: "mean score", values: g.map((x) => x.meanScore) }])));
    parts.push(fig("Which guidance scale wins (kept images)", barChart("guidance-wins", labels, [{ name: "kept", values: g.map((x) => x.wins) }])));
    parts.push(fig("Prompt class by category", heatmapChart("prompt-class-by-category", d.images.prompt_class_by_category), "Classes by keyword cues in the instruction (see src/report/diagnostics.ts)."));
    parts.push(reasons("Prompts without a kept image, by reason", "images-dropped", d.images.dropped));
  }

  parts.push("<h2>Responses and pairs</h2>");
  if (!d.responses) parts.push(notRun("response stage"));
  else {
    const r = d.responses;
    parts.push(`<p>${r.pairs} pairs.</p>`);
    parts.push(fig("Response length (words), chosen vs rejected", histogramChart("length-words", r.length_words)));
    parts.push(fig("Response scores, chosen vs rejected", histogramChart("response-scores", r.scores)));
    parts.push(fig("Pair margins (chosen - rejected score)", histogramChart("pair-margins", r.margins)));
    parts.push(fig("Per-responder outcomes", barChart("responder-win-rates", r.responder_win_rates.map((w) => w.responder), [
      { name: "chosen", values: r.responder_win_rates.map((w) => w.chosen) },
      { name: "rejected", values: r.responder_win_rates.map((w) => w.rejected) },
    ])));
    const hn = HARD_NEGATIVE_CLASSES.filter((c) => r.hard_negatives[c] > 0);
    parts.push(fig("Hard-negative composition of rejected answers", barChart("hard-negatives", hn, [{ name: "pairs", values: hn.map((c) => r.hard_negatives[c]) }]), "Rules: similarity to chosen >= 0.9 duplicate, >= 0.6 near-miss; under 5 words or odd characters fragment; length ratio > 3 or repeated trigrams; refusal phrases generic/meta; else fluent but different."));
    parts.push(reasons("Candidates dropped, by reason", "candidates-dropped", r.dropped_candidates));
    parts.push(reasons("Images without a pair, by reason", "pairs-dropped", r.dropped_images));
  }

  parts.push("<h2>Training</h2>");
  parts.push(d.train ? fig("DPO training curves", lineChart("training-curves", d.train.curves)) : notRun("train stage"));

  parts.push("<h2>Evaluation</h2>");
  if (!d.evaluate) parts.push(notRun("evaluate stage"));
  else {
    const e = d.evaluate;
    const table = (cls: string, t: { head: string[]; rows: string[][] }) =>
      `<table class="${cls}"><tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</table>`;
    parts.push(`<p>Model variants side by side in the paper's layout (empty: the benchmark was not run).</p>${table("eval-paper", e.paper)}`);
    const o = e.overlap;
    if (o) {
      parts.push(
        o.overlaps.length === 0
          ? `<p class="overlap">Overlap check: none of ${o.benchmark_images} benchmark images matches any of ${o.training_images} training images (sha256, or dHash within ${o.dhash_max_distance} bits).</p>`
          : `<p class="overlap flagged"><b>Overlap: ${o.overlaps.length} benchmark image(s) match training images; evaluated anyway (allow_overlap: true): these results partly measure memorisation.</b></p>` +
              table("overlaps", { head: ["benchmark", "image", "training image", "match", "bits"], rows: o.overlaps.map((x) => [x.benchmark, x.image, x.training_image, x.match, String(x.distance)]) }),
      );
    }
    for (const b of e.benchmarks) {
      parts.push(`<h3>${esc(b.name)} <span class="type">(${esc(b.type)})</span></h3>`);
      if (b.smoke) parts.push(`<p class="smoke">Smoke check: ${esc(SMOKE_NOTE)}.</p>`);
      parts.push(table(`eval-detail${b.smoke ? " smoke" : ""}`, b.detail).replace("<table ", `<table data-benchmark="${esc(b.name)}" `));
    }
  }

  if (d.sweep) parts.push(sweepHtml(d.sweep));

  parts.push("<h2>Samples</h2>");
  if (gallery.length === 0) parts.push(notRun("response stage (no pairs to show)"));
  else {
    parts.push(
      `<div class="gallery">${gallery
        .map(
          (g) => `<div class="sample"><img alt="${esc(g.id)}" src="${g.imageDataUri}"><p class="q">${esc(g.instruction)}</p>` +
            `<p class="chosen"><b>chosen</b> (${g.chosen.score.toFixed(3)}, ${esc(g.chosen.model)}): ${esc(g.chosen.text)}</p>` +
            `<p class="rejected"><b>rejected</b> (${g.rejected.score.toFixed(3)}, ${esc(g.rejected.model)}): ${esc(g.rejected.text)}</p></div>`,
        )
        .join("")}</div>`,
    );
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PDS-DPO run ${esc(d.run_id)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
.succeeded{color:#1a7f37}.failed{color:#c62828}.not-run{color:#777;font-style:italic}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}figcaption{font-weight:600;font-size:13px}
.note{font-size:11px;color:#666;max-width:560px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.sample{border:1px solid #ddd;padding:8px;font-size:12px}.sample img{width:128px;height:128px;image-rendering:pixelated}
.chosen{color:#1a5e2a}.rejected{color:#8a2a1a}
.smoke,.flagged{color:#8a5a00}.type{font-weight:normal;color:#666}
</style></head><body>
${parts.join("\n")}
</body></html>
`;
}
