/** SHA-256 of a file's bytes, read in 1 MiB chunks (no TensorFlow.js; used by base identity and downloads). */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

/** Hex SHA-256 of the bytes of an open file descriptor, from offset 0 to its end. */
export function sha256OfFd(fd: number): string {
  const hash = createHash('sha256');
  const buf = new Uint8Array(1 << 20);
  for (let pos = 0; ; ) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n <= 0) break;
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  return hash.digest('hex');
}

/** Hex SHA-256 of a file (errors from opening it propagate as thrown by node:fs). */
export function sha256OfPath(path: string): string {
  const fd = openSync(path, 'r');
  try {
    return sha256OfFd(fd);
  } finally {
    closeSync(fd);
  }
}
