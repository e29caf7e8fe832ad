/**
 * A directory as one deterministic file: a strict POSIX ustar archive (IEEE Std 1003.1, "ustar"
 * interchange format), readable by any tar (`tar -xf`, Python's `tarfile`, Go's `archive/tar`).
 * What fedtune writes: regular files only, at the top level, sorted by name, mode 0644, uid/gid 0,
 * mtime 0, empty user and group names, each file's data padded to 512-byte blocks, then two zero
 * blocks and nothing else — so the same files always give the same bytes.
 *
 * What fedtune reads is as strict: ustar headers with good checksums, regular files with plain
 * top-level names (no absolute names, no `..`, no `/`), no duplicates (nor names differing only in case or
 * Unicode normal form, which macOS and Windows would merge), every entry whole, two zero
 * blocks at the end and only zero bytes after them. It extracts into a directory it creates, with
 * exclusive creates, so nothing is written outside it or through a link.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from './checkpoint.js';

/** Bytes in a tar block. */
export const USTAR_BLOCK = 512;
/** The largest file ustar's 11 octal digits can describe: 8 GiB − 1. */
export const USTAR_MAX_FILE_BYTES = 8 ** 11 - 1;
const NAME_BYTES = 100;
const CHUNK = 1 << 20;

/** A file to put in a bundle: its name there and where it is now. */
export interface BundleEntry {
  /** A plain file name (no `/`), at most 100 bytes of UTF-8. */
  readonly name: string;
  readonly path: string;
}

/** What writing or extracting a bundle saw. */
export interface BundleSummary {
  /** Entry names in archive order (sorted, for a bundle fedtune wrote). */
  readonly files: readonly string[];
  /** Hex SHA-256 of each file's bytes, by name. */
  readonly fileSha256: ReadonlyMap<string, string>;
  /** Bytes of file data (headers and padding not counted). */
  readonly dataBytes: number;
}

/** A written bundle: its entries, size and SHA-256. */
export interface WrittenBundle extends BundleSummary {
  /** Bytes of the archive. */
  readonly size: number;
  /** Hex SHA-256 of the archive. */
  readonly sha256: string;
}

/** Why a name cannot be a bundle entry, or undefined when it can. */
function nameProblem(name: string): string | undefined {
  if (name === '') return 'an empty name';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return `an absolute name ${JSON.stringify(name)}`;
  if (name.split(/[/\\]/).includes('..')) return `a name that climbs out of the directory (path traversal) ${JSON.stringify(name)}`;
  if (name.includes('/') || name.includes('\\')) return `a name ${JSON.stringify(name)} that is not a file at the top level`;
  if (name === '.' || name.includes('\0')) return `an unusable name ${JSON.stringify(name)}`;
  if (Buffer.byteLength(name, 'utf8') > NAME_BYTES) return `a name longer than ${NAME_BYTES} bytes ${JSON.stringify(name)}`;
  return undefined;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** Sum of a header's bytes with its checksum field read as eight spaces. */
function headerChecksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < USTAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum;
}

/** The 512-byte ustar header of a regular file. */
function header(name: string, size: number): Uint8Array {
  const h = Buffer.alloc(USTAR_BLOCK);
  h.write(name, 0, NAME_BYTES, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1'); // uid
  h.write(octal(0, 8), 116, 'latin1'); // gid
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1'); // mtime
  h.write('0', 156, 'latin1'); // typeflag: regular file
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(0, 8), 329, 'latin1'); // devmajor
  h.write(octal(0, 8), 337, 'latin1'); // devminor
  h.write(`${headerChecksum(h).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/**
 * Write `entries` as a deterministic ustar archive at `outPath` (created or truncated), streaming
 * each file through in 1 MiB chunks. Throws RangeError for a bad or duplicate name, or a file of
 * 8 GiB or more (ustar cannot describe it), and Error when a file changes size while it is read.
 */
export function writeUstarBundle(outPath: string, entries: readonly BundleEntry[]): WrittenBundle {
  if (typeof outPath !== 'string' || outPath === '') throw new TypeError('writeUstarBundle: outPath must be a non-empty path');
  if (!Array.isArray(entries)) throw new TypeError('writeUstarBundle: entries must be an array of { name, path }');
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const [i, e] of sorted.entries()) {
    const why = typeof e?.name === 'string' ? nameProblem(e.name) : 'a name that is not a string';
    if (why) throw new RangeError(`writeUstarBundle: entries holds ${why}`);
    if (i > 0 && sorted[i - 1].name === e.name) throw new RangeError(`writeUstarBundle: entries names "${e.name}" twice`);
  }
  const archive = createHash('sha256');
  const fileSha256 = new Map<string, string>();
  let size = 0;
  let dataBytes = 0;
  const out = openSync(outPath, 'w');
  const emit = (b: Uint8Array): void => {
    writeAll(out, b);
    archive.update(b);
    size += b.length;
  };
  try {
    const buf = new Uint8Array(CHUNK);
    for (const e of sorted) {
      const src = openSync(e.path, 'r');
      try {
        const n = fstatSync(src).size;
        if (n > USTAR_MAX_FILE_BYTES) throw new RangeError(`writeUstarBundle: ${e.path} has ${n} bytes, more than a ustar entry can hold (${USTAR_MAX_FILE_BYTES}); shard the checkpoint into smaller files`);
        emit(header(e.name, n));
        const hash = createHash('sha256');
        for (let pos = 0; pos < n; ) {
          const got = readSync(src, buf, 0, Math.min(CHUNK, n - pos), pos);
          if (got <= 0) throw new Error(`writeUstarBundle: ${e.path} shrank while it was read (${pos} of ${n} bytes)`);
          const part = buf.subarray(0, got);
          hash.update(part);
          emit(part);
          pos += got;
        }
        if (readSync(src, buf, 0, 1, n) !== 0) throw new Error(`writeUstarBundle: ${e.path} grew while it was read`);
        if (n % USTAR_BLOCK) emit(new Uint8Array(USTAR_BLOCK - (n % USTAR_BLOCK)));
        fileSha256.set(e.name, hash.digest('hex'));
        dataBytes += n;
      } finally {
        closeSync(src);
      }
    }
    emit(new Uint8Array(2 * USTAR_BLOCK));
  } finally {
    closeSync(out);
  }
  return { files: sorted.map((e) => e.name), fileSha256, dataBytes, size, sha256: archive.digest('hex') };
}

/** A field of NUL-terminated text (latin1 bytes read as UTF-8). */
function text(h: Uint8Array, start: number, len: number): string {
  const f = h.subarray(start, start + len);
  const end = f.indexOf(0);
  return Buffer.from(end < 0 ? f : f.subarray(0, end)).toString('utf8');
}

/** An octal number field: digits, optionally led by spaces or zeros and ended by NUL or space; undefined otherwise. */
function octalField(h: Uint8Array, start: number, len: number): number | undefined {
  const s = Buffer.from(h.subarray(start, start + len)).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  return /^[0-7]{1,12}$/.test(s) ? parseInt(s, 8) : undefined;
}

/** A name as a case-insensitive, normalizing file system sees it. */
function foldName(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

const TYPE_NAMES: Readonly<Record<string, string>> = { '1': 'a hard link', '2': 'a symbolic link', '3': 'a character device', '4': 'a block device', '5': 'a directory', '6': 'a FIFO', '7': 'a contiguous file', x: 'a pax extended header', g: 'a pax global header', L: 'a GNU long name', K: 'a GNU long link name' };

/** Options of {@link extractUstarBundle}. */
export interface ExtractOptions {
  /** Refuse the bundle once its files would hold more than this many bytes. Default: no limit but the archive's own size. */
  readonly maxBytes?: number;
}

/**
 * Extract a ustar bundle into `destDir`, which must not exist (it is created; its parent must
 * exist). Anything but the strict form described above throws ModelFormatError naming the bundle
 * and what is wrong, and removes `destDir` with whatever was written into it.
 */
export function extractUstarBundle(bundlePath: string, destDir: string, options: ExtractOptions = {}): BundleSummary {
  if (typeof bundlePath !== 'string' || bundlePath === '') throw new TypeError('extractUstarBundle: bundlePath must be a non-empty path');
  if (typeof destDir !== 'string' || destDir === '') throw new TypeError('extractUstarBundle: destDir must be a non-empty path');
  const maxBytes = options.maxBytes ?? Infinity;
  if (!(maxBytes >= 0)) throw new RangeError(`extractUstarBundle: options.maxBytes must be a number ≥ 0, got ${String(options.maxBytes)}`);
  const bad = (why: string): never => {
    throw new ModelFormatError(`${bundlePath} is not a usable directory bundle: ${why}`);
  };
  let fd: number;
  try {
    fd = openSync(bundlePath, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read bundle ${bundlePath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    mkdirSync(destDir); // EEXIST rather than reuse a directory someone else filled
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const files: string[] = [];
  const fileSha256 = new Map<string, string>();
  const folded = new Map<string, string>();
  let dataBytes = 0;
  try {
    const total = fstatSync(fd).size;
    const block = new Uint8Array(USTAR_BLOCK);
    const readBlock = (pos: number, what: string): Uint8Array => {
      if (pos + USTAR_BLOCK > total || readSync(fd, block, 0, USTAR_BLOCK, pos) !== USTAR_BLOCK) bad(`it is truncated (${what} at byte ${pos} is missing)`);
      return block;
    };
    const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
    const buf = new Uint8Array(CHUNK);
    let pos = 0;
    for (;;) {
      const h = readBlock(pos, 'a header or the end marker');
      if (isZero(h)) {
        if (!isZero(readBlock(pos + USTAR_BLOCK, 'the second zero block of the end marker'))) bad(`its end marker at byte ${pos} is a single zero block followed by data`);
        pos += 2 * USTAR_BLOCK;
        break;
      }
      const sum = octalField(h, 148, 8);
      if (sum === undefined || sum !== headerChecksum(h)) bad(`the header at byte ${pos} has a bad checksum (damaged, or not a tar archive)`);
      if (text(h, 257, 6) !== 'ustar' || h[262] !== 0 || text(h, 263, 2) !== '00') bad(`the header at byte ${pos} is not a POSIX ustar header (magic "ustar\\0", version "00")`);
      const type = String.fromCharCode(h[156]);
      const prefix = text(h, 345, 155);
      const name = prefix === '' ? text(h, 0, NAME_BYTES) : `${prefix}/${text(h, 0, NAME_BYTES)}`;
      if (type !== '0' && type !== '\0') bad(`entry ${JSON.stringify(name)} is ${TYPE_NAMES[type] ?? `of type ${JSON.stringify(type)}`}, not a regular file`);
      const why = nameProblem(name);
      if (why) bad(`it holds ${why}`);
      if (fileSha256.has(name)) bad(`it holds ${JSON.stringify(name)} twice`);
      // on a case-insensitive or normalizing file system (macOS, Windows) these would be one file
      const twin = folded.get(foldName(name));
      if (twin !== undefined) bad(`it holds ${JSON.stringify(twin)} and ${JSON.stringify(name)}, which differ only in case or Unicode form`);
      folded.set(foldName(name), name);
      const size = octalField(h, 124, 12);
      if (size === undefined) bad(`entry ${JSON.stringify(name)} has an unreadable size field`);
      const n = size as number;
      if (dataBytes + n > maxBytes) bad(`entry ${JSON.stringify(name)} (${n} bytes) takes its files past the ${maxBytes} bytes announced`);
      const start = pos + USTAR_BLOCK;
      const padded = Math.ceil(n / USTAR_BLOCK) * USTAR_BLOCK;
      if (start + padded > total) bad(`it is truncated (entry ${JSON.stringify(name)} needs ${n} bytes from byte ${start}; the archive has ${total})`);
      let out: number;
      try {
        out = openSync(join(destDir, name), 'wx', 0o644);
      } catch (e) {
        return bad(`entry ${JSON.stringify(name)} cannot be created here (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      const hash = createHash('sha256');
      try {
        for (let off = 0; off < n; ) {
          const got = readSync(fd, buf, 0, Math.min(CHUNK, n - off), start + off);
          if (got <= 0) bad(`it is truncated inside entry ${JSON.stringify(name)}`);
          const part = buf.subarray(0, got);
          hash.update(part);
          writeAll(out, part);
          off += got;
        }
      } finally {
        closeSync(out);
      }
      files.push(name);
      fileSha256.set(name, hash.digest('hex'));
      dataBytes += n;
      pos = start + padded;
    }
    // tar writers may pad the archive to a record size, with zero bytes only
    for (let p = pos; p < total; ) {
      const got = readSync(fd, buf, 0, Math.min(CHUNK, total - p), p);
      if (got <= 0) break;
      const at = buf.subarray(0, got).findIndex((x) => x !== 0);
      if (at >= 0) bad(`it has data after its end marker (byte ${p + at})`);
      p += got;
    }
    return { files, fileSha256, dataBytes };
  } catch (e) {
    rmSync(destDir, { recursive: true, force: true });
    throw e;
  } finally {
    closeSync(fd);
  }
}
