// The content-addressed artifact store: <root>/cas/sha256/<hex[:2]>/<hex>. Workers on
// the shared filesystem write into it directly; the control plane verifies what it uses.
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { IntegrityError } from "../errors.js";

export const URI_PREFIX = "cas://sha256/";

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

  pathOf(hex: string): string {
    return join(this.root, "cas", "sha256", hex.slice(0, 2), hex);
  }

  pathOfUri(uri: string): string {
    if (!uri.startsWith(URI_PREFIX)) throw new IntegrityError(`unsupported artifact uri ${uri}`);
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

  /** Reads an artifact and checks it against its hash and size. */
  verify(ref: { uri: string; sha256: string; bytes: number }): Buffer {
    const path = this.pathOfUri(ref.uri);
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      throw new IntegrityError(`artifact ${ref.uri} is missing from the store (${path})`);
    }
    const hex = sha256(data);
    if (hex !== ref.sha256 || !ref.uri.endsWith(hex) || data.length !== ref.bytes) {
      throw new IntegrityError(`artifact ${ref.uri} does not match its sha256 (${path})`);
    }
    return data;
  }
}
