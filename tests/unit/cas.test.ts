// Artifact refs from a worker are checked before any file is touched: 64 hex digits, the URI
// naming the same hash, a declared size under the cap; then a regular file of that size; only
// then is it read (in chunks) and hashed.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { ContentStore, MAX_ARTIFACT_BYTES, sha256 } from "../../src/store/cas.js";
import { tempDir } from "../helpers.js";

describe("content store refs", () => {
  const store = new ContentStore(tempDir("pdsdpo-cas-"));
  const good = store.put(Buffer.from("a real artifact"), "text/plain");

  it("reads a ref that matches", () => {
    expect(store.verify(good).toString()).toBe("a real artifact");
  });

  it("refuses a path in place of a hash before opening anything", () => {
    for (const uri of ["cas://sha256/../../../../etc/passwd", "cas://sha256/../../../../dev/zero", `cas://sha256/${"A".repeat(64)}`]) {
      expect(() => store.verify({ uri, sha256: good.sha256, bytes: 100 })).toThrow(/is not 64 hex digits/);
    }
    expect(() => store.pathOf("../x")).toThrow(/is not 64 hex digits/);
  });

  it("refuses a URI of another hash, an absurd size, a file of another size, and a FIFO (without hanging)", () => {
    const other = sha256("other");
    expect(() => store.verify({ uri: `cas://sha256/${other}`, sha256: good.sha256, bytes: good.bytes })).toThrow(/names another hash/);
    expect(() => store.verify({ ...good, bytes: MAX_ARTIFACT_BYTES + 1 })).toThrow(/declares \d+ bytes/);
    expect(() => store.verify({ ...good, bytes: good.bytes + 1 })).toThrow(/has 15 bytes, not the 16 declared/);
    const hex = sha256("a fifo");
    mkdirSync(dirname(store.pathOf(hex)), { recursive: true });
    execFileSync("mkfifo", [store.pathOf(hex)]);
    expect(() => store.verify({ uri: `cas://sha256/${hex}`, sha256: hex, bytes: 6 })).toThrow(/is not a regular file/);
    // Altered bytes of the declared size: the hash check.
    const bad = sha256("tampered");
    mkdirSync(dirname(store.pathOf(bad)), { recursive: true });
    writeFileSync(store.pathOf(bad), "Tampered");
    expect(() => store.verify({ uri: `cas://sha256/${bad}`, sha256: bad, bytes: 8 })).toThrow(/does not match its sha256/);
  });
});
