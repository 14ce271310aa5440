import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadExperiment } from "../../config/load.js";
import { DEFAULT_RENDER, renderK8s } from "../../k8s/render.js";
import type { Output } from "../output.js";

export function k8sRenderCommand(o: { config: string; out: string; namespace: string; nodeSelector: Record<string, string> }, out: Output): number {
  const { objects, experiment } = renderK8s(loadExperiment(o.config), { ...DEFAULT_RENDER, namespace: o.namespace, nodeSelector: o.nodeSelector });
  mkdirSync(o.out, { recursive: true });
  const workers = join(o.out, "workers.yaml");
  const exp = join(o.out, "experiment.remote.yaml");
  writeFileSync(workers, objects.map((x) => stringify(x, { lineWidth: 0, aliasDuplicateObjects: false })).join("---\n"));
  writeFileSync(exp, `# Rendered by \`orchestrate k8s render\`: the workers as remote endpoints. Put the CA of the\n# workers' certificate in ca.crt beside this file and the token in $PDS_DPO_WORKER_TOKEN.\n${stringify(experiment, { lineWidth: 0, aliasDuplicateObjects: false })}`);
  out.stdout(`${workers}\n${exp}\n`);
  return 0;
}
