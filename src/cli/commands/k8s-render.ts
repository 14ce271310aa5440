import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadExperiment } from "../../config/load.js";
import { DEFAULT_RENDER, renderK8s, type RenderOptions } from "../../k8s/render.js";
import type { Output } from "../output.js";

/** Writes every object into <out>/<experiment>.yaml (apply it with kubectl) and lists them. */
export function k8sRenderCommand(o: { config: string; out: string; render: Partial<RenderOptions> }, out: Output): number {
  const loaded = loadExperiment(o.config);
  const { objects } = renderK8s(loaded, { ...DEFAULT_RENDER, ...o.render });
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, `${loaded.config.name}.yaml`);
  writeFileSync(file, objects.map((x) => stringify(x, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n"));
  for (const x of objects) out.stdout(`${x.kind as string}/${(x.metadata as { name: string }).name}\n`);
  out.stdout(`${file}\n`);
  return 0;
}
