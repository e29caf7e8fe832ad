/**
 * A program's base as a device receives it: a blob that is the base file itself, or (BlobRef
 * container "ustar") a bundle of a Hugging Face checkpoint directory, unpacked strictly into
 * `<dataDir>/bases/<blob sha256>` and checked against the announced directory identity before
 * the base is opened (model/hf-bundle.ts).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../model/checkpoint.js';
import { HF_BUNDLE_CONTAINER, unpackHfBundle } from '../model/hf-bundle.js';
import type { BlobRef__Output } from '../proto/generated/fedtune/v1/BlobRef.js';

/** How the base's blob holds the base: '' = the file itself, 'ustar' = a bundled directory. */
export type BaseContainer = '' | typeof HF_BUNDLE_CONTAINER;

const SHA = /^[0-9a-f]{64}$/;

/**
 * The container of an announced base, checked: an unknown container, or a bundle without the
 * identity of its content, throws Error (this device cannot use such a base).
 */
export function baseContainer(ref: Pick<BlobRef__Output, 'container' | 'contentSha256' | 'format'>): BaseContainer {
  const c = ref.container ?? '';
  if (c === '') return '';
  if (c !== HF_BUNDLE_CONTAINER) throw new Error(`the program's base comes in container "${c}", which this device does not know`);
  if (ref.format !== 'hf') throw new Error(`the program's base is a "${c}" bundle of format "${ref.format}"; this device unpacks only Hugging Face directories ("hf")`);
  if (!SHA.test(ref.contentSha256 ?? '')) throw new Error(`the program's base is a "${c}" bundle announced without the identity of its content (content_sha256)`);
  return c;
}

/** Where a bundled base is unpacked: `<dataDir>/bases/<blob sha256>`. */
export function bundledBaseDir(dataDir: string, blobSha256: string): string {
  if (!SHA.test(blobSha256)) throw new RangeError(`bundledBaseDir: "${blobSha256}" is not a hex SHA-256`);
  return join(dataDir, 'bases', blobSha256);
}

/**
 * Unpack a downloaded (hash-verified) bundle for `ref` into {@link bundledBaseDir}, refusing
 * anything not strictly a bundle of a checkpoint whose identity is `ref.contentSha256`; the
 * bundle file is removed once unpacked. Returns the directory.
 */
export function unpackBaseBundle(bundlePath: string, dataDir: string, ref: Pick<BlobRef__Output, 'sha256' | 'sizeBytes' | 'container' | 'contentSha256' | 'format'>): string {
  baseContainer(ref);
  const dir = bundledBaseDir(dataDir, ref.sha256);
  mkdirSync(join(dataDir, 'bases'), { recursive: true });
  try {
    unpackHfBundle(bundlePath, dir, { identity: ref.contentSha256, maxBytes: Number(ref.sizeBytes) });
  } catch (e) {
    // a blob that verified but unpacks badly would only fail again: download it afresh next time
    if (e instanceof ModelFormatError) rmSync(bundlePath, { force: true });
    throw e;
  }
  rmSync(bundlePath, { force: true });
  return dir;
}

/** Whether the base of `ref` is already unpacked (an unpacked directory exists only when whole and checked). */
export function hasBundledBase(dataDir: string, blobSha256: string): boolean {
  return existsSync(bundledBaseDir(dataDir, blobSha256));
}
