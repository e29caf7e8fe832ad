/**
 * A Hugging Face checkpoint directory as one downloadable blob: a ustar bundle (dir-bundle.ts) of
 * exactly the files its identity covers (hf-files.ts: config.json, the safetensors file or index
 * and shards, tokenizer.json, tokenizer_config.json, generation_config.json). The bundle's own
 * SHA-256 names the blob; the base's identity stays the directory's listing hash, which the
 * unpacking side recomputes from the bytes it wrote and checks against what was announced.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from './checkpoint.js';
import { extractUstarBundle, writeUstarBundle, type WrittenBundle } from './dir-bundle.js';
import { hfIdentity, readHfLayout } from './hf-files.js';

/** The container name a bundled directory base is announced with (BlobRef.container). */
export const HF_BUNDLE_CONTAINER = 'ustar';

/** A written bundle of a checkpoint directory, with the directory's identity. */
export interface HfBundle extends WrittenBundle {
  /** The directory's identity (see hfIdentity), from the bytes that went into the bundle. */
  readonly identity: string;
}

/**
 * Bundle checkpoint directory `dir` into `outPath`: its identity files, sorted. Throws
 * ModelFormatError for a directory that is not a readable checkpoint.
 */
export function writeHfBundle(dir: string, outPath: string): HfBundle {
  const layout = readHfLayout(dir);
  const written = writeUstarBundle(outPath, layout.files.map((name) => ({ name, path: join(dir, name) })));
  return { ...written, identity: hfIdentity(dir, layout.files, written.fileSha256) };
}

/** Options of {@link unpackHfBundle}. */
export interface UnpackHfOptions {
  /** The identity the directory must have (hex SHA-256 of its listing). */
  readonly identity: string;
  /** Refuse a bundle whose files hold more bytes than this (e.g. the announced blob size). */
  readonly maxBytes?: number;
}

/**
 * Unpack a bundle into `destDir` (which must not exist), check that it holds exactly the files
 * of a checkpoint's identity and that their identity is `options.identity`, and only then move
 * it into place (so `destDir` exists only when whole and checked). Throws ModelFormatError naming
 * the bundle otherwise, leaving nothing behind. Returns `destDir`.
 */
export function unpackHfBundle(bundlePath: string, destDir: string, options: UnpackHfOptions): string {
  if (typeof options?.identity !== 'string' || !/^[0-9a-f]{64}$/.test(options.identity)) throw new TypeError('unpackHfBundle: options.identity must be a hex SHA-256');
  if (existsSync(destDir)) throw new RangeError(`unpackHfBundle: ${destDir} already exists`);
  const stage = `${destDir}.unpacking-${process.pid}`;
  rmSync(stage, { recursive: true, force: true });
  const got = extractUstarBundle(bundlePath, stage, { maxBytes: options.maxBytes });
  try {
    const expected = readHfLayout(stage).files;
    const names = [...got.files].sort();
    const extra = names.filter((f) => !expected.includes(f));
    if (extra.length) throw new ModelFormatError(`${bundlePath} holds ${extra.join(', ')}, which ${extra.length === 1 ? 'is' : 'are'} not part of a checkpoint's identity`);
    const identity = hfIdentity(stage, names, got.fileSha256);
    if (identity !== options.identity) throw new ModelFormatError(`${bundlePath} unpacks to a checkpoint whose identity is ${identity}, not the ${options.identity} announced for it`);
    renameSync(stage, destDir);
    return destDir;
  } catch (e) {
    rmSync(stage, { recursive: true, force: true });
    throw e;
  }
}
