// I/O: a file's lines as bytes, read a chunk at a time (never the whole file in memory).
import { readSync } from "node:fs";

/** Bytes read at a time: small enough that a chunk's text dies young in V8's heap. */
export const CHUNK = 1 << 16;

/**
 * Every line of an open file, as its bytes (without the newline) and the file offset where it
 * starts, the bytes after the last newline too (empty when the file ends with one). A line is
 * cut as bytes, never decoded before it ends, so a character a chunk's end cuts stays whole.
 * `onChunk` sees each chunk's bytes as they are read, before any line they end is yielded.
 * A line's bytes may be the chunk buffer's, read into again: use them before the next line.
 */
export function* lineBytes(fd: number, onChunk?: (bytes: Buffer) => void): Generator<{ bytes: Buffer; start: number }> {
  const buf = Buffer.alloc(CHUNK);
  // A line's start read in earlier chunks, copied (the buffer is read into again).
  let pending: Buffer[] = [];
  let offset = 0;
  for (let n = readSync(fd, buf, 0, CHUNK, null); n > 0; n = readSync(fd, buf, 0, CHUNK, null)) {
    const bytes = buf.subarray(0, n);
    onChunk?.(bytes);
    let from = 0;
    for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, from)) {
      const line = pending.length ? Buffer.concat([...pending, bytes.subarray(from, nl)]) : bytes.subarray(from, nl);
      pending = [];
      yield { bytes: line, start: offset + nl - line.length };
      from = nl + 1;
    }
    if (from < n) pending.push(Buffer.from(bytes.subarray(from)));
    offset += n;
  }
  const last = Buffer.concat(pending);
  yield { bytes: last, start: offset - last.length };
}
