// TRL preference data as a parquet file (as `datasets` and pyarrow write it): read row by row
// into the same pairs as its JSON lines, bad rows named by their row number, images checked;
// validate defers a parquet file's rows to the run (readDataset marks it deferred); dataset
// convert reads it as TRL pairs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { readDataset, readDatasetAsync } from "../../src/dataset/read.js";
import { execa } from "execa";
import { ROOT, tempDir, writeParquet } from "../helpers.js";
import { encodePng } from "../support/png.js";

const turn = (role: string, content: string) => [{ role, content }];
const row = (id: string, extra: Record<string, unknown> = {}) => ({ id, images: [`images/${id}.png`], prompt: turn("user", `What is in ${id}?`), chosen: turn("assistant", `a cat in ${id}`), rejected: turn("assistant", "a dog"), ...extra });

function datasetDir(ids: string[]): string {
  const dir = tempDir("pdsdpo-parquet-");
  mkdirSync(join(dir, "images"));
  for (const id of ids) writeFileSync(join(dir, "images", `${id}.png`), encodePng(2, 2, new Uint8Array(12)));
  return dir;
}

const dir = datasetDir(["p1", "p2"]);
const rows = [row("p1"), row("p2")];

describe("TRL preference data in a parquet file", { timeout: 60_000 }, () => {
  beforeAll(async () => {
    // TRL's conversational format, its standard one (plain strings), bad rows, another format's use.
    await writeParquet({
      [join(dir, "pairs.parquet")]: rows,
      [join(dir, "standard.parquet")]: [row("p1", { prompt: "Plain?", chosen: "yes", rejected: "no" })],
      [join(dir, "bad.parquet")]: [row("p1"), row("p3"), row("p4", { chosen: null }), row("p1")],
    });
  });

  it("reads the same pairs as its JSON lines, images checked under the dataset's directory", async () => {
    writeFileSync(join(dir, "pairs.jsonl"), rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
    const fromParquet = await readDatasetAsync(join(dir, "pairs.parquet"), "trl");
    expect(fromParquet.issues).toEqual([]);
    expect(fromParquet.pairs).toEqual(readDataset(join(dir, "pairs.jsonl"), "trl").pairs);
    expect(fromParquet.pairs.map((p) => [p.id, p.question, p.chosen])).toEqual([["p1", "What is in p1?", "a cat in p1"], ["p2", "What is in p2?", "a cat in p2"]]);
    expect(fromParquet.images).toEqual([[join(dir, "images/p1.png")], [join(dir, "images/p2.png")]]);
    expect((await readDatasetAsync(join(dir, "standard.parquet"), "trl")).pairs).toEqual([{ id: "p1", images: ["images/p1.png"], question: "Plain?", chosen: "yes", rejected: "no" }]);
    // validate cannot read parquet synchronously: it defers the rows to the run, with no problem yet.
    expect(readDataset(join(dir, "pairs.parquet"), "trl")).toMatchObject({ deferred: true, issues: [], pairs: [] });
  });

  it("names each bad row by its number (from 1) and field, and a missing image", async () => {
    const read = await readDatasetAsync(join(dir, "bad.parquet"), "trl");
    expect(read.issues).toEqual([
      expect.stringMatching(/^row 3: chosen: /),
      'row 4: id: "p1" repeats row 1',
      `row 2: image not found: ${join(dir, "images/p3.png")}`,
    ]);
  });

  it("dataset convert reads it with --from trl: the same pairs in another format; --from another format is refused", async () => {
    let stderr = "";
    const run = (args: string[]) => main(["dataset", "convert", ...args], { stdout: () => {}, stderr: (t) => (stderr += t), isTTY: false });
    expect(await run([join(dir, "pairs.parquet"), "--from", "trl", "--to", "ms-swift", "--out", join(dir, "swift.jsonl")]), stderr).toBe(0);
    const back = await readDatasetAsync(join(dir, "swift.jsonl"), "ms-swift");
    expect(back.issues).toEqual([]);
    expect(back.pairs.map(({ id, question, chosen, rejected }) => ({ id, question, chosen, rejected }))).toEqual(rows.map((r) => ({ id: r.id, question: `What is in ${r.id}?`, chosen: `a cat in ${r.id}`, rejected: "a dog" })));
    expect(await run([join(dir, "pairs.parquet"), "--from", "llava", "--to", "trl", "--out", join(dir, "x.jsonl")])).toBe(2);
    expect(stderr).toContain(`${join(dir, "pairs.parquet")}: a parquet file: only --from trl reads parquet`);
    expect(await run([join(dir, "bad.parquet"), "--from", "trl", "--to", "trl", "--out", join(dir, "y.jsonl")])).toBe(2);
    expect(stderr).toMatch(/row 3: chosen: /);
  });

  it("a file that says parquet but is not, and parquet for another format, are one problem each", async () => {
    writeFileSync(join(dir, "broken.parquet"), "PAR1 but not really a parquet file");
    expect((await readDatasetAsync(join(dir, "broken.parquet"), "trl")).issues).toEqual([expect.stringMatching(/^not a readable parquet file: /)]);
    expect(readDataset(join(dir, "pairs.parquet"), "llava").issues).toEqual(["a parquet file: only dataset_format trl reads parquet"]);
  });

  it("images embedded as the Image feature (bytes, the original file name as path) are read by their bytes; convert writes them under images/", async () => {
    const png = encodePng(3, 2, new Uint8Array(18).fill(7));
    // As a Hub dataset holds them: a struct of bytes and a path that names no file here.
    const script = [
      "import base64, sys, pyarrow as pa, pyarrow.parquet as pq",
      "png = base64.b64decode(sys.argv[2])",
      "img = pa.struct([('bytes', pa.binary()), ('path', pa.string())])",
      "turn = lambda r, c: [{'role': r, 'content': c}]",
      "rows = {'id': ['e1', 'e2'], 'images': [[{'bytes': png, 'path': 'orig1.png'}], [{'bytes': b'not an image', 'path': None}]],",
      "        'prompt': [turn('user', 'What?')] * 2, 'chosen': [turn('assistant', 'a cube')] * 2, 'rejected': [turn('assistant', 'a dog')] * 2}",
      "schema = pa.schema([('id', pa.string()), ('images', pa.list_(img)), ('prompt', pa.list_(pa.struct([('role', pa.string()), ('content', pa.string())]))),",
      "                    ('chosen', pa.list_(pa.struct([('role', pa.string()), ('content', pa.string())]))), ('rejected', pa.list_(pa.struct([('role', pa.string()), ('content', pa.string())])))])",
      "pq.write_table(pa.table(rows, schema=schema), sys.argv[1])",
    ].join("\n");
    const file = join(dir, "embedded.parquet");
    await execa(join(ROOT, ".venv/bin/python"), ["-c", script, file, Buffer.from(png).toString("base64")]);
    const read = await readDatasetAsync(file, "trl");
    expect(read.issues).toEqual(["row 2: images[0]: embedded bytes are not a PNG, JPEG, WebP or GIF image"]);
    const name = read.pairs[0]!.images[0]!;
    expect(name).toMatch(/^embedded:[0-9a-f]{64}$/);
    expect(read.images[0]).toEqual([name]);
    expect(Buffer.from(read.embedded!.get(name)!)).toEqual(Buffer.from(png));

    // Only the good row: convert writes its image beside the output, content-named.
    const script2 = script.replace("'e2'", "'e2'").replace("[{'bytes': b'not an image', 'path': None}]", "[{'bytes': png, 'path': None}]");
    await execa(join(ROOT, ".venv/bin/python"), ["-c", script2, file, Buffer.from(png).toString("base64")]);
    const out = join(dir, "conv", "llava.json");
    let stderr = "";
    expect(await main(["dataset", "convert", file, "--from", "trl", "--to", "llava", "--out", out], { stdout: () => {}, stderr: (t) => (stderr += t), isTTY: false }), stderr).toBe(0);
    const back = await readDatasetAsync(out, "llava");
    expect(back.issues).toEqual([]);
    expect(back.images.map((i) => i[0])).toEqual([join(dir, "conv", `images/${name.slice(9, 25)}.png`), join(dir, "conv", `images/${name.slice(9, 25)}.png`)]);
    expect(existsSync(back.images[0]![0]!) && readFileSync(back.images[0]![0]!)).toEqual(Buffer.from(png));
  });
});
