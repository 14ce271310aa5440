// Pure: small inline SVG charts, no script and no network. Each <svg> carries
// data-chart (its name) and data-points (how many marks it drew) for tests and tools.
import type { Heatmap, Histogram } from "./diagnostics.js";

const W = 560;
const H = 240;
const PAD = { l: 48, r: 12, t: 12, b: 40 };
const COLORS = ["#2f6fde", "#e0533d", "#3aa45b", "#9a5cd0", "#d89a1c", "#1aa3a3"];

export const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (x: number) => (Math.abs(x) >= 100 || Number.isInteger(x) ? String(Math.round(x)) : x.toFixed(2));

function frame(name: string, points: number, body: string, legend: string[] = []): string {
  const keys = legend.map((l, i) => `<rect x="${PAD.l + i * 120}" y="${H - 14}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${PAD.l + 14 + i * 120}" y="${H - 5}" font-size="11">${esc(l)}</text>`).join("");
  return `<svg data-chart="${esc(name)}" data-points="${points}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(name)}" xmlns="http://www.w3.org/2000/svg">${body}${keys}</svg>`;
}

function axes(yMax: number, yMin = 0): string {
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - yMin) / (yMax - yMin || 1));
  const ticks = [yMin, (yMin + yMax) / 2, yMax].map((v) => `<text x="${PAD.l - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${fmt(v)}</text>`).join("");
  return `<line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}" stroke="#888"/><line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="#888"/>${ticks}`;
}

/** Grouped bars: one group per label, one bar per series. */
export function barChart(name: string, labels: string[], series: { name: string; values: number[] }[]): string {
  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  const max = Math.max(1e-9, ...values);
  const min = Math.min(0, ...values);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const group = plotW / Math.max(1, labels.length);
  const bw = (group * 0.8) / Math.max(1, series.length);
  const y = (v: number) => PAD.t + plotH * (1 - (v - min) / (max - min || 1));
  let bars = "";
  let points = 0;
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === undefined || !Number.isFinite(v)) return;
      const top = Math.min(y(v), y(0));
      const h = Math.max(1, Math.abs(y(v) - y(0)));
      bars += `<rect x="${PAD.l + i * group + group * 0.1 + j * bw}" y="${top}" width="${bw}" height="${h}" fill="${COLORS[j % COLORS.length]}"><title>${esc(`${label} ${s.name}: ${fmt(v)}`)}</title></rect>`;
      points++;
    });
    bars += `<text x="${PAD.l + i * group + group / 2}" y="${H - PAD.b + 12}" font-size="10" text-anchor="middle">${esc(label)}</text>`;
  });
  return frame(name, points, axes(max, min) + bars, series.length > 1 ? series.map((s) => s.name) : []);
}

export function histogramChart(name: string, h: Histogram): string {
  const labels = h.edges.slice(0, -1).map((e) => fmt(e));
  return barChart(name, labels, h.series.map((s) => ({ name: s.name, values: s.counts })));
}

export function lineChart(name: string, series: { name: string; points: [number, number][] }[]): string {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return frame(name, 0, "");
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const x = (v: number) => PAD.l + (W - PAD.l - PAD.r) * ((v - x0) / (x1 - x0 || 1));
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - y0) / (y1 - y0 || 1));
  let body = axes(y1, y0);
  series.forEach((s, j) => {
    const c = COLORS[j % COLORS.length];
    body += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.points.map(([a, b]) => `${x(a)},${y(b)}`).join(" ")}"/>`;
    body += s.points.map(([a, b]) => `<circle cx="${x(a)}" cy="${y(b)}" r="3" fill="${c}"><title>${esc(`${s.name} step ${a}: ${fmt(b)}`)}</title></circle>`).join("");
  });
  return frame(name, pts.length, body, series.map((s) => s.name));
}

export function heatmapChart(name: string, h: Heatmap): string {
  const max = Math.max(1, ...h.values.flat());
  const cw = (W - 150) / Math.max(1, h.cols.length);
  const ch = Math.min(24, (H - 40) / Math.max(1, h.rows.length));
  let body = h.cols.map((c, j) => `<text x="${140 + j * cw + cw / 2}" y="12" font-size="10" text-anchor="middle">${esc(c)}</text>`).join("");
  let points = 0;
  h.rows.forEach((r, i) => {
    body += `<text x="134" y="${22 + i * ch + ch / 2 + 4}" font-size="10" text-anchor="end">${esc(r)}</text>`;
    h.cols.forEach((c, j) => {
      const v = h.values[i]![j]!;
      if (v > 0) points++;
      body += `<rect x="${140 + j * cw}" y="${22 + i * ch}" width="${cw - 2}" height="${ch - 2}" fill="rgba(47,111,222,${(0.08 + 0.92 * (v / max)).toFixed(3)})"><title>${esc(`${r} / ${c}: ${v}`)}</title></rect><text x="${140 + j * cw + cw / 2}" y="${22 + i * ch + ch / 2 + 4}" font-size="10" text-anchor="middle">${v}</text>`;
    });
  });
  const height = Math.max(H, 30 + h.rows.length * ch);
  return `<svg data-chart="${esc(name)}" data-points="${points}" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${esc(name)}" xmlns="http://www.w3.org/2000/svg">${body}</svg>`;
}

/**
 * Lines of means against x with the spread as a band and error bars (mean ± spread), and a
 * dashed horizontal line for each reference value (e.g. the base model's metric).
 */
export function bandChart(name: string, series: { name: string; points: { x: number; mean: number; spread: number }[] }[], references: { name: string; value: number }[] = []): string {
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.mean));
  if (pts.length === 0) return frame(name, 0, "");
  const spread = (p: { spread: number }) => (Number.isFinite(p.spread) ? p.spread : 0);
  const xs = pts.map((p) => p.x);
  const ys = [...pts.flatMap((p) => [p.mean - spread(p), p.mean + spread(p)]), ...references.map((r) => r.value).filter(Number.isFinite)];
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = (x1 - x0) * 0.05 || 1;
  const x = (v: number) => PAD.l + (W - PAD.l - PAD.r) * ((v - x0 + pad) / (x1 - x0 + 2 * pad));
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - y0) / (y1 - y0 || 1));
  let body = axes(y1, y0);
  body += [...new Set(xs)].map((v) => `<text x="${x(v)}" y="${H - PAD.b + 12}" font-size="10" text-anchor="middle">${fmt(v)}</text>`).join("");
  const names: string[] = [];
  series.forEach((s, j) => {
    const c = COLORS[j % COLORS.length];
    const ps = s.points.filter((p) => Number.isFinite(p.mean));
    names.push(s.name);
    const upper = ps.map((p) => `${x(p.x)},${y(p.mean + spread(p))}`);
    const lower = ps.map((p) => `${x(p.x)},${y(p.mean - spread(p))}`).reverse();
    body += `<polygon class="band" fill="${c}" fill-opacity="0.18" stroke="none" points="${[...upper, ...lower].join(" ")}"/>`;
    body += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${ps.map((p) => `${x(p.x)},${y(p.mean)}`).join(" ")}"/>`;
    body += ps
      .map(
        (p) =>
          `<line class="error-bar" x1="${x(p.x)}" x2="${x(p.x)}" y1="${y(p.mean - spread(p))}" y2="${y(p.mean + spread(p))}" stroke="${c}"/>` +
          `<circle cx="${x(p.x)}" cy="${y(p.mean)}" r="3" fill="${c}"><title>${esc(`${s.name} ${fmt(p.x)}: ${fmt(p.mean)} ± ${fmt(spread(p))}`)}</title></circle>`,
      )
      .join("");
  });
  references.forEach((r, k) => {
    if (!Number.isFinite(r.value)) return;
    const c = COLORS[(series.length + k) % COLORS.length];
    names.push(r.name);
    body += `<line class="reference" x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(r.value)}" y2="${y(r.value)}" stroke="${c}" stroke-dasharray="5 4"><title>${esc(`${r.name}: ${fmt(r.value)}`)}</title></line>`;
  });
  return frame(name, pts.length, body, names);
}
