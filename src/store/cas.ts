// The content-addressed artifact store: <root>/cas/sha256/<hex[:2]>/<hex>. Workers on
// the shared filesystem write into it directly; the control plane verifies what it uses.
import { createHash } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync, constants as fsConstants } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { IntegrityError } from "../errors.js";

export const URI_PREFIX = "cas://sha256/";
const HEX64 = /^[0-9a-f]{64}$/;
/** The largest artifact the control plane reads (a worker's message limit is 64 MiB; adapters of big LoRA ranks are larger). */
export const MAX_ARTIFACT_BYTES = 4 * 1024 ** 3;

export interface ArtifactInfo {
  uri: string;
  sha256: string;
  bytes: number;
  mediaType: string;
}

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export class ContentStore {
  constructor(readonly root: string) {}

  /** The file of an artifact; anything but 64 hex digits is refused before any path is made of it. */
  pathOf(hex: string): string {
    if (!HEX64.test(hex)) throw new IntegrityError(`artifact hash ${JSON.stringify(hex.slice(0, 80))} is not 64 hex digits`);
    return join(this.root, "cas", "sha256", hex.slice(0, 2), hex);
  }

  pathOfUri(uri: string): string {
    if (!uri.startsWith(URI_PREFIX)) throw new IntegrityError(`unsupported artifact uri ${JSON.stringify(uri.slice(0, 80))}`);
    return this.pathOf(uri.slice(URI_PREFIX.length));
  }

  /** Writes bytes (temp file + rename, so readers never see a partial artifact). */
  put(data: Uint8Array, mediaType: string): ArtifactInfo {
    const hex = sha256(data);
    const dest = this.pathOf(hex);
    // An existing copy is trusted only if it still hashes right: a damaged one is replaced.
    if (!this.intact(hex)) {
      mkdirSync(dirname(dest), { recursive: true });
      const tmp = join(dirname(dest), `.tmp-${randomBytes(6).toString("hex")}`);
      const fd = openSync(tmp, "w");
      try {
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, dest);
    }
    return { uri: URI_PREFIX + hex, sha256: hex, bytes: data.length, mediaType };
  }

  /** Whether the artifact is in the store with exactly the bytes of its hash. */
  intact(hex: string): boolean {
    try {
      return sha256(readFileSync(this.pathOf(hex))) === hex;
    } catch {
      return false;
    }
  }

  /**
   * Reads an artifact and checks it against its hash and size. The ref is checked first (64
   * hex digits, the same in the URI and the hash, a size under the cap), then the file (a
   * regular file of the declared size), and only then is it read, in chunks, and hashed.
   */
  verify(ref: { uri: string; sha256: string; bytes: number }): Buffer {
    const path = this.pathOfUri(ref.uri);
    if (ref.uri !== URI_PREFIX + ref.sha256) throw new IntegrityError(`artifact ${ref.uri} names another hash than its sha256 ${ref.sha256.slice(0, 80)}`);
    if (!Number.isSafeInteger(ref.bytes) || ref.bytes < 0 || ref.bytes > MAX_ARTIFACT_BYTES) throw new IntegrityError(`artifact ${ref.uri} declares ${ref.bytes} bytes (at most ${MAX_ARTIFACT_BYTES})`);
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO planted in the store must not hang.
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch {
      throw new IntegrityError(`artifact ${ref.uri} is missing from the store (${path})`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new IntegrityError(`artifact ${ref.uri} is not a regular file (${path})`);
      if (st.size !== ref.bytes) throw new IntegrityError(`artifact ${ref.uri} has ${st.size} bytes, not the ${ref.bytes} declared (${path})`);
      const data = Buffer.alloc(st.size);
      const hash = createHash("sha256");
      for (let off = 0; off < st.size; ) {
        const n = readSync(fd, data, off, Math.min(1 << 20, st.size - off), off);
        if (n === 0) throw new IntegrityError(`artifact ${ref.uri} changed while it was read (${path})`);
        hash.update(data.subarray(off, off + n));
        off += n;
      }
      if (hash.digest("hex") !== ref.sha256) throw new IntegrityError(`artifact ${ref.uri} does not match its sha256 (${path})`);
      return data;
    } finally {
      closeSync(fd);
    }
  }
}
