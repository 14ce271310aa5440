// Bad inputs are caught before work starts, each as a short located problem: the prompts file
// (strict UTF-8, control characters, id and text sizes, not JSON lines at all), capped issue
// lists, hostile YAML (alias bombs, deep nesting), env names and secrets, replay manifests
// and the store root.
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadExperiment, parseExperiment } from "../../src/config/load.js";
import { invalidUtf8Offset, parsePrompts, readPrompts } from "../../src/config/prompts.js";
import { SECRET_NAME } from "../../src/config/schema.js";
import { ConfigError, formatIssue, type ConfigIssue } from "../../src/errors.js";
import { manifestProblem } from "../../src/cli/commands/replay.js";
import { storeProblem } from "../../src/cli/main.js";
import { MINIMAL_EXPERIMENT } from "../helpers.js";

const BASE = MINIMAL_EXPERIMENT;

const dir = mkdtempSync(join(tmpdir(), "pdsdpo-inputs-"));
const write = (name: string, content: string | Uint8Array) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const prompt = (fields: Record<string, unknown> = {}) => JSON.stringify({ id: "a-1", category: "art", t2i_prompt: "a cat", instruction: "<image> what?", ...fields });
const promptIssues = (text: string) => parsePrompts(text, "stages.images.prompts", "p.jsonl").issues.map((i) => i.message);
const issues = (text: string) => parseExperiment(text).issues.map(formatIssue);

describe("prompts file", () => {
  it("invalid UTF-8 is an issue naming the file, its line and the byte offset (not silently replaced)", () => {
    const good = `${prompt()}\n`;
    const head = '{"id": "a-2", "category": "art", "t2i_prompt": "caf';
    const bytes = Buffer.concat([Buffer.from(good), Buffer.from(head), Buffer.from([0xe9]), Buffer.from('", "instruction": "what?"}\n')]);
    const path = write("latin1.jsonl", bytes);
    const read = readPrompts(path, "stages.images.prompts");
    expect(read.issues.map((i) => i.message)).toEqual([`${path}:2: not valid UTF-8: byte 0xe9 at byte offset ${good.length + head.length}`]);
    expect(read.prompts.length).toBe(0);
  });

  it("finds the first byte that is not well-formed UTF-8", () => {
    expect(invalidUtf8Offset(Buffer.from("héllo ✓ 𝄞"))).toBe(-1);
    expect(invalidUtf8Offset(Buffer.from([0x61, 0xc3]))).toBe(1); // truncated sequence
    expect(invalidUtf8Offset(Buffer.from([0x61, 0x62, 0xed, 0xa0, 0x80]))).toBe(2); // a surrogate
    expect(invalidUtf8Offset(Buffer.from([0xc0, 0xaf]))).toBe(0); // overlong
    expect(invalidUtf8Offset(Buffer.from([0x61, 0x80]))).toBe(1); // a lone continuation byte
  });

  it("its sha256 is that of the file's bytes", () => {
    const bytes = Buffer.concat([Buffer.from(`${prompt()}\n`), Buffer.from([0xff, 0x0a])]);
    const path = write("bytes.jsonl", bytes);
    expect(readPrompts(path, "k").sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    const ok = write("ok-bytes.jsonl", `\ufeff${prompt({ t2i_prompt: "café ✓" })}\n`);
    const read = readPrompts(ok, "k");
    expect(read.issues).toEqual([]);
    expect(read.sha256).toBe(createHash("sha256").update(Buffer.from(`\ufeff${prompt({ t2i_prompt: "café ✓" })}\n`)).digest("hex"));
  });

  it("a file of many read chunks: lines and multi-byte characters cut at any chunk boundary read back whole", () => {
    // Lines of varying length, with two- to four-byte characters, over many 64 KiB reads; the last without a newline.
    const lines = Array.from({ length: 3000 }, (_, i) => prompt({ id: `p-${i}`, t2i_prompt: `café${"é".repeat(i % 97)} ✓ 𝄞`, instruction: `<image> ${"x".repeat((i * 37) % 301)}?` }));
    const text = lines.join("\n");
    const path = write("chunks.jsonl", text);
    const read = readPrompts(path, "k");
    expect(read.issues).toEqual([]);
    expect(read.sha256).toBe(createHash("sha256").update(text).digest("hex"));
    expect(read.prompts.length).toBe(3000);
    for (const i of [0, 1, 777, 1500, 2998, 2999]) expect(JSON.stringify(read.prompts.at(i))).toBe(lines[i]);
    expect([...read.prompts].map((p) => p.id)).toEqual(lines.map((_, i) => `p-${i}`));
    // A bad byte far past the first read names its own line and offset, and only that.
    const bad = Buffer.concat([Buffer.from(`${lines.slice(0, 2000).join("\n")}\nnot json\n`), Buffer.from([0xc3, 0x28]), Buffer.from("\n")]);
    const badPath = write("chunks-bad.jsonl", bad);
    expect(readPrompts(badPath, "k").issues.map((i) => i.message)).toEqual([`${badPath}:2002: not valid UTF-8: byte 0xc3 at byte offset ${bad.length - 3}`]);
    // A sequence the file's end cuts short.
    const cut = write("chunks-cut.jsonl", Buffer.concat([Buffer.from(`${lines[0]}\n`), Buffer.from([0xe2, 0x9c])]));
    expect(readPrompts(cut, "k").issues.map((i) => i.message)).toEqual([`${cut}:2: not valid UTF-8: byte 0xe2 at byte offset ${Buffer.byteLength(lines[0]!) + 1}`]);
  });

  it("a NUL or other control character in any field is an issue naming line and field; tab and newline are fine", () => {
    const ok = prompt({ id: "a-0", t2i_prompt: "a cat\twith a hat", instruction: "<image> line one\nline two" });
    expect(promptIssues(`${ok}\n${prompt({ t2i_prompt: "a\u0000cat" })}\n`)).toEqual(["p.jsonl:2: t2i_prompt: control character U+0000 at character 2"]);
    expect(promptIssues(`${ok}\n${prompt({ instruction: "what\u001b[31m?" })}\n`)).toEqual(["p.jsonl:2: instruction: control character U+001B at character 5"]);
    expect(promptIssues(`${ok}\n${prompt({ category: "a\u0007rt" })}\n`)).toEqual(["p.jsonl:2: category: control character U+0007 at character 2"]);
    expect(promptIssues(`${ok}\n${prompt({ instruction: "what\u0085?" })}\n`)).toEqual(["p.jsonl:2: instruction: control character U+0085 at character 5"]);
    expect(promptIssues(`${ok}\n`)).toEqual([]);
  });

  it("a prompt id has at most 128 characters of letters, digits, '.', '_' and '-'", () => {
    expect(promptIssues(`${prompt({ id: "a".repeat(128) })}\n`)).toEqual([]);
    expect(promptIssues(`${prompt({ id: "a".repeat(300) })}\n`)).toEqual(["p.jsonl:1: id: 300 characters; at most 128"]);
    expect(promptIssues(`${prompt({ id: "a/../b" })}\n`)).toEqual(["p.jsonl:1: id: ids use letters, digits, '.', '_' and '-' (a letter or digit first)"]);
  });

  it("a prompt text over 64 KiB is an issue", () => {
    expect(promptIssues(`${prompt({ t2i_prompt: "x".repeat(64 * 1024) })}\n`)).toEqual([]);
    expect(promptIssues(`${prompt({ t2i_prompt: "x".repeat(64 * 1024 + 1) })}\n`)).toEqual(["p.jsonl:1: t2i_prompt: 65537 bytes; at most 65536 (64 KiB)"]);
    // Bytes, not characters: 30,000 three-byte characters are 90,000 bytes.
    expect(promptIssues(`${prompt({ instruction: "✓".repeat(30_000) })}\n`)).toEqual(["p.jsonl:1: instruction: 90000 bytes; at most 65536 (64 KiB)"]);
  });

  it("a file that is not JSON lines at all (YAML, a binary) is one issue, not one a line", () => {
    expect(promptIssues(BASE)).toEqual(["p.jsonl: not a JSON lines file: line 1 is not JSON"]);
    expect(promptIssues(`\n\n- {id: a}\n- {id: b}\n`)).toEqual(["p.jsonl: not a JSON lines file: line 3 is not JSON"]);
    const png = write("image.jsonl", Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(4000, 0xff), Buffer.from("\n".repeat(50))]));
    expect(readPrompts(png, "k").issues.map((i) => i.message)).toEqual([`${png}: not a JSON lines file: line 1 is not JSON`]);
    // A JSON lines file with some bad lines still names each of them.
    expect(promptIssues(`${prompt()}\nnot json\n`)).toEqual(["p.jsonl:2: not valid JSON"]);
  });
});

describe("issue lists and messages are capped", () => {
  const many = (n: number): ConfigIssue[] => Array.from({ length: n }, (_, i) => ({ path: "k", message: `problem ${i + 1}` }));

  it("a ConfigError prints the first 20 issues, then how many more there are", () => {
    const lines = new ConfigError(many(25)).message.split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[19]).toBe("k: problem 20");
    expect(lines[20]).toBe("... and 5 more problems");
    expect(new ConfigError(many(21)).message.split("\n").at(-1)).toBe("... and 1 more problem");
    expect(new ConfigError(many(20)).message.split("\n")).toHaveLength(20);
    expect(new ConfigError(many(25)).issues).toHaveLength(25);
  });

  it("130,000 bad prompt lines load to a ConfigError of 21 lines (no stack overflow)", () => {
    write("prompts.jsonl", `${prompt()}\n${'{"id": 1}\n'.repeat(130_000)}`);
    const file = write("many.yaml", BASE);
    let err: unknown;
    try {
      loadExperiment(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const lines = (err as ConfigError).message.split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe(`stages.images.prompts: ${join(dir, "prompts.jsonl")}:2: id: expected string, received number (line 12)`);
    expect(lines[20]).toBe("... and 129980 more problems");
  });

  it("each issue is one line of at most a few hundred characters", () => {
    const long = formatIssue({ path: "a.b".repeat(20_000), message: "m".repeat(10_000), line: 3 });
    expect(long.length).toBeLessThan(450);
    expect(long).toMatch(/^a\.ba\.b.*…: m+… \(line 3\)$/);
    expect(formatIssue({ path: "env.A\nB", message: "x\r\ny" })).toBe("env.A\\u000aB: x\\u000d\\u000ay");
  });
});

describe("hostile YAML", () => {
  it("an alias bomb (billion laughs) is a config issue, not an internal error", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++) {
      const [p, c] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
      lines.push(`${c}: &${c} [${Array(10).fill(`*${p}`).join(", ")}]`);
    }
    expect(issues(`${lines.join("\n")}\n`)).toEqual(['(document): YAML aliases expand too far (more than 100 expansions; a "billion laughs" document?)']);
    // A few aliases, as a config may share a runtime block, still work.
    const shared = BASE.replace("  sd:\n", "  sd:\n    runtime: &rt {type: local, device: cpu}\n").replace("  pick:\n", "  pick:\n    runtime: *rt\n");
    expect(issues(shared)).toEqual([]);
  });

  it("very deep nesting is one short issue, whether or not the YAML parser's stack holds", () => {
    for (const text of ["[".repeat(20_000) + "]".repeat(20_000), `a: ${"{b: ".repeat(20_000)}1${"}".repeat(20_000)}`, `a: ${"[".repeat(100)}${"]".repeat(100)}`]) {
      const found = issues(text);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(/^\S{1,40}: YAML nested more than 64 levels deep \(line 1\)$/);
    }
    const block = Array.from({ length: 3000 }, (_, i) => `${"  ".repeat(i)}k${i}:`).join("\n");
    expect(issues(block)).toEqual(["k0.k1.k2.k3…: YAML nested more than 64 levels deep (line 65)"]);
  });
});

describe("runtime env", () => {
  const withEnv = (env: string) => BASE.replace("    model: {source: tiny, name: sd}\n", `    model: {source: tiny, name: sd}\n    runtime: {type: local, env: ${env}}\n`);

  it("keys must be environment variable names", () => {
    expect(issues(withEnv('{"1BAD": x, "A-B": y, "A B": z, "A=B": w, OK_1: v, _x: u}'))).toEqual(
      ["1BAD", "A-B", "A B", "A=B"].map((k) => `workers.sd.runtime.env.${k}: not an environment variable name (letters, digits and '_', not starting with a digit) (line 7)`),
    );
  });

  it("names like HF_AUTH, WANDB_KEY, *_PASS, *_PWD, COOKIE and SESSION look like secrets; common settings do not", () => {
    for (const k of ["HF_TOKEN", "HF_AUTH", "WANDB_KEY", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "BASIC_AUTH", "OAUTH_CLIENT", "DB_PASS", "SMTP_PWD", "COOKIE", "GITHUB_COOKIES", "SESSION", "SESSION_ID", "MY_PASSWORD", "GCP_CREDENTIALS", "hf_token"]) {
      expect(SECRET_NAME.test(k), k).toBe(true);
    }
    for (const k of ["OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED", "HF_HOME", "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "PWD", "MONKEY_PATCH", "AUTHOR", "KEYBOARD", "PASSTHROUGH", "NCCL_P2P_DISABLE", "PYTORCH_CUDA_ALLOC_CONF", "MASTER_ADDR"]) {
      expect(SECRET_NAME.test(k), k).toBe(false);
    }
    expect(issues(withEnv("{HF_AUTH: abc, OMP_NUM_THREADS: '1'}"))).toEqual([
      "workers.sd.runtime.env.HF_AUTH: looks like a secret; secrets come from the environment (export HF_AUTH), never from the config (line 7)",
    ]);
  });
});

describe("replay manifests", () => {
  const full = { schema: "pds-dpo/manifest@2", run_id: "r1", config: { file: "/x/e.yaml", resolved: {} }, inputs: { prompts: { sha256: "ab" } }, workers: {}, stages: {}, artifacts: [], outputs: {} };

  it("names what is missing or wrong before anything runs", () => {
    expect(manifestProblem(full)).toBeUndefined();
    expect(manifestProblem({})).toBe("not a pds-dpo manifest (no schema field)");
    expect(manifestProblem(null)).toBe("not a pds-dpo manifest (not a JSON object)");
    expect(manifestProblem([full])).toBe("not a pds-dpo manifest (not a JSON object)");
    expect(manifestProblem({ schema: "other@2" })).toBe('not a pds-dpo manifest (schema "other@2", not pds-dpo/manifest@2)');
    expect(manifestProblem({ schema: "pds-dpo/manifest@2" })).toBe("not a complete manifest: run_id is missing");
    // An older orchestrator's manifest (its records inside it) is named as such.
    expect(manifestProblem({ schema: "pds-dpo/manifest@1", run_id: "r" })).toBe("written by an older orchestrator (schema pds-dpo/manifest@1, its image records inside the manifest); replay it with that version");
    expect(manifestProblem({ ...full, config: { file: "/x/e.yaml" } })).toBe("not a complete manifest: config.resolved is missing");
    expect(manifestProblem({ ...full, workers: { a: null } })).toMatch(/^not a complete manifest: workers\.a: expected record/);
    expect(manifestProblem({ ...full, run_id: 7 })).toBe("not a complete manifest: run_id: expected string, received number");
  });
});

describe("--store", () => {
  it("must be a directory, or not exist yet below one", () => {
    const file = write("a-file", "x");
    expect(storeProblem(file)).toBe(`--store ${file}: not a directory`);
    expect(storeProblem(join(file, "sub", "store"))).toBe(`--store ${join(file, "sub", "store")}: cannot be made under ${file}, which is not a directory`);
    expect(storeProblem(dir)).toBeUndefined();
    expect(storeProblem(join(dir, "new", "store"))).toBeUndefined();
  });
});
