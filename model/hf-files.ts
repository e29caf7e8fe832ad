/**
 * The files of a Hugging Face checkpoint directory, read without loading any weights:
 * config.json, the safetensors headers (one `model.safetensors`, or the shards a
 * `model.safetensors.index.json` names, each header read through a file descriptor), and the
 * directory's identity hash. hf-base.ts streams the tensors on this layout.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from './checkpoint.js';
import { sha256OfFd } from './file-hash.js';
import type { LlamaConfig } from './config.js';
import { hfConfigToLlama } from './hf-config.js';

/** Element sizes of safetensors dtypes (those fedtune converts are F32, F16 and BF16). */
const DTYPE_BYTES: Readonly<Record<string, number>> = { BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8 };
/** Headers larger than this are refused (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;
/** Optional files that are part of a directory's identity when present. */
const EXTRA_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
/** The single-file weights name transformers uses. */
export const HF_WEIGHTS_FILE = 'model.safetensors';
/** The name of the index of a sharded checkpoint (its weight_map maps tensor → shard file). */
export const HF_INDEX_FILE = 'model.safetensors.index.json';

/** One tensor of a shard, as its header describes it. */
export interface HfTensorEntry {
  readonly name: string;
  /** Shard file, relative to the directory. */
  readonly file: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range [start, end) in the shard file. */
  readonly start: number;
  readonly end: number;
}

/** One safetensors file of the checkpoint. */
export interface HfShard {
  /** Relative to the directory. */
  readonly file: string;
  readonly path: string;
  readonly size: number;
  /** Byte offset of the tensor data (8 + header length). */
  readonly dataStart: number;
  /** Its tensors in data-offset order. */
  readonly tensors: readonly HfTensorEntry[];
}

/** A checkpoint directory's config and weight layout. */
export interface HfLayout {
  readonly dir: string;
  readonly config: LlamaConfig;
  /** Path of the file that lists the tensors (model.safetensors or the index), for messages. */
  readonly weightsSource: string;
  readonly shards: readonly HfShard[];
  /** Each tensor name (the index's choice of shard when sharded). */
  readonly tensors: ReadonlyMap<string, HfTensorEntry>;
  /** Every file the identity covers, relative, sorted. */
  readonly files: readonly string[];
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelFormatError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ModelFormatError(`${path} is not valid JSON`);
  }
}

function readExactly(fd: number, buf: Uint8Array, pos: number, path: string): void {
  for (let off = 0; off < buf.length; ) {
    const n = readSync(fd, buf, off, buf.length - off, pos + off);
    if (n <= 0) throw new ModelFormatError(`${path} ended early at byte ${pos + off}`);
    off += n;
  }
}

/** Read and check one safetensors header: offsets within the file, sizes matching dtype and shape, no overlaps. */
export function readShardHeader(dir: string, file: string): HfShard {
  const path = join(dir, file);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const bad = (why: string): never => {
      throw new ModelFormatError(`${path} is not a readable safetensors file: ${why}`);
    };
    if (size < 8) bad(`it has only ${size} bytes`);
    const lenBytes = new Uint8Array(8);
    readExactly(fd, lenBytes, 0, path);
    const n = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
    if (n <= 1 || n > MAX_HEADER || 8 + n > size) bad(`its header length ${n} runs past the end of its ${size} bytes`);
    const headerBytes = new Uint8Array(n);
    readExactly(fd, headerBytes, 8, path);
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(headerBytes).toString('utf8'));
    } catch {
      return bad('its header is not JSON');
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('its header is not a JSON object');
    const dataStart = 8 + n;
    const dataLen = size - dataStart;
    const tensors: HfTensorEntry[] = [];
    for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue;
      const t = (v ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const shape = t.shape;
      if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) bad(`tensor "${name}" has a bad shape`);
      const [s, e] = Array.isArray(t.data_offsets) ? (t.data_offsets as unknown[]) : [];
      if (!Number.isSafeInteger(s) || !Number.isSafeInteger(e) || (s as number) < 0 || (e as number) < (s as number) || (e as number) > dataLen) {
        bad(`tensor "${name}" has data offsets [${String(s)}, ${String(e)}] outside its ${dataLen} data bytes`);
      }
      const elem = DTYPE_BYTES[String(t.dtype)];
      if (elem === undefined) bad(`tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`);
      const want = (shape as number[]).reduce((a, b) => a * b, 1) * elem;
      if ((e as number) - (s as number) !== want) bad(`tensor "${name}" has ${(e as number) - (s as number)} data bytes but ${String(t.dtype)} [${String(shape)}] needs ${want}`);
      tensors.push({ name, file, dtype: String(t.dtype), shape: shape as number[], start: dataStart + (s as number), end: dataStart + (e as number) });
    }
    tensors.sort((a, b) => a.start - b.start || a.end - b.end);
    for (let i = 1; i < tensors.length; i++) {
      if (tensors[i].start < tensors[i - 1].end) bad(`tensors "${tensors[i - 1].name}" and "${tensors[i].name}" overlap`);
    }
    return { file, path, size, dataStart, tensors };
  } finally {
    closeSync(fd);
  }
}

/** Shard names of an index's weight_map: plain file names in the directory. */
function readIndex(dir: string): Map<string, string> {
  const path = join(dir, HF_INDEX_FILE);
  const json = readJson(path) as { weight_map?: unknown } | null;
  const map = json?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new ModelFormatError(`${path} has no weight_map object`);
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '' || file.includes('/') || file.includes('\\') || file === '.' || file === '..') {
      throw new ModelFormatError(`${path} maps tensor "${name}" to ${JSON.stringify(file)}, which is not a file name in the directory`);
    }
    if (!existsSync(join(dir, file))) throw new ModelFormatError(`${path} names shard "${file}", which is missing from ${dir}`);
    out.set(name, file);
  }
  if (out.size === 0) throw new ModelFormatError(`${path} has an empty weight_map`);
  return out;
}

/**
 * Read a checkpoint directory's config.json and safetensors headers (no tensor data). Throws
 * ModelFormatError naming the file for a missing directory or config.json, bad JSON, an
 * unsupported model, a corrupt header, or an index naming a missing shard or tensor.
 */
export function readHfLayout(dir: string): HfLayout {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('readHfLayout: dir must be a non-empty string');
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new ModelFormatError(`${dir} is not a directory holding a Hugging Face checkpoint`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new ModelFormatError(`${dir} has no config.json, so it is not a Hugging Face checkpoint`);
  const config = hfConfigToLlama(readJson(configPath), configPath);
  const files = ['config.json'];
  const tensors = new Map<string, HfTensorEntry>();
  let shards: HfShard[];
  let weightsSource: string;
  if (existsSync(join(dir, HF_WEIGHTS_FILE))) {
    const shard = readShardHeader(dir, HF_WEIGHTS_FILE);
    shards = [shard];
    weightsSource = shard.path;
    files.push(HF_WEIGHTS_FILE);
    for (const t of shard.tensors) tensors.set(t.name, t);
  } else if (existsSync(join(dir, HF_INDEX_FILE))) {
    weightsSource = join(dir, HF_INDEX_FILE);
    const index = readIndex(dir);
    const names = [...new Set(index.values())].sort();
    shards = names.map((f) => readShardHeader(dir, f));
    files.push(HF_INDEX_FILE, ...names);
    const byFile = new Map(shards.map((s) => [s.file, new Map(s.tensors.map((t) => [t.name, t]))]));
    for (const [name, file] of index) {
      const t = byFile.get(file)?.get(name);
      if (!t) throw new ModelFormatError(`${weightsSource} places tensor "${name}" in ${file}, which does not hold it`);
      tensors.set(name, t);
    }
  } else {
    throw new ModelFormatError(`${dir} has neither ${HF_WEIGHTS_FILE} nor ${HF_INDEX_FILE}`);
  }
  for (const f of EXTRA_FILES) if (existsSync(join(dir, f))) files.push(f);
  files.sort();
  return { dir, config, weightsSource, shards, tensors, files };
}

/** Hex SHA-256 of a file, read in 1 MiB chunks; an unreadable file is a ModelFormatError naming it. */
export function sha256OfFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return sha256OfFd(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The identity of a checkpoint directory: the SHA-256 of the listing
 * `<hex sha256 of file>  <relative path>\n` over `files` sorted by relative path (the format
 * of `sha256sum`). `known` supplies hashes already computed (e.g. while streaming the shards);
 * the other files are hashed here.
 */
export function hfIdentity(dir: string, files: readonly string[], known: ReadonlyMap<string, string> = new Map()): string {
  const listing = [...files]
    .sort()
    .map((f) => `${known.get(f) ?? sha256OfFile(join(dir, f))}  ${f}\n`)
    .join('');
  return createHash('sha256').update(listing, 'utf8').digest('hex');
}

/** What identifies a Hugging Face checkpoint directory, read without loading its weights. */
export interface HfBaseInfo {
  readonly format: 'hf';
  readonly config: LlamaConfig;
  /** The directory's identity (see {@link hfIdentity}). */
  readonly sha256: string;
  /** Total bytes of the files the identity covers. */
  readonly sizeBytes: number;
  /** Those files, relative to the directory, sorted. */
  readonly files: readonly string[];
}

/** Config and identity of a checkpoint directory (headers read, every identity file hashed). */
export function hfBaseInfo(dir: string): HfBaseInfo {
  const layout = readHfLayout(dir);
  const sizes = new Map(layout.shards.map((s) => [s.file, s.size]));
  const sizeBytes = layout.files.reduce((a, f) => a + (sizes.get(f) ?? statSync(join(dir, f)).size), 0);
  return { format: 'hf', config: layout.config, sha256: hfIdentity(dir, layout.files), sizeBytes, files: layout.files };
}
