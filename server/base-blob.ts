/**
 * A program's base as the one blob devices download: a base file as it is, or a Hugging Face
 * checkpoint directory as a deterministic ustar bundle of its identity files (model/hf-bundle.ts),
 * announced with BlobRef.container "ustar" and the directory's identity as content_sha256.
 */
import type { BaseInfo } from '../model/base-info.js';
import { HF_BUNDLE_CONTAINER, writeHfBundle, type HfBundle } from '../model/hf-bundle.js';
import type { BlobStore, StoredBlob } from './blob-store.js';

/** How a base blob holds the base: '' = the file itself, 'ustar' = a bundle of a directory. */
export type BaseContainer = '' | typeof HF_BUNDLE_CONTAINER;

/** A stored base blob and its container. */
export interface BaseBlob extends StoredBlob {
  readonly container: BaseContainer;
}

/**
 * Store the base at `path` (whose identity `info` was read with readBaseInfo) as a blob. A
 * directory is bundled; if its files no longer have the identity `info` records (they changed
 * in between), this throws rather than serve a bundle of something else.
 */
export function putBaseBlob(blobs: BlobStore, path: string, info: BaseInfo): BaseBlob {
  if (info.format !== 'hf') return { ...blobs.putFile(path), container: '' };
  let bundle: HfBundle | undefined;
  const blob = blobs.putWritten((tmp) => {
    bundle = writeHfBundle(path, tmp);
  });
  if (!bundle || bundle.identity !== info.sha256) throw new Error(`base ${path} changed while it was being bundled (identity ${info.sha256.slice(0, 12)}… when read, ${bundle?.identity.slice(0, 12)}… when bundled); start again once it is stable`);
  if (bundle.sha256 !== blob.sha256) throw new Error(`the bundle of base ${path} changed on disk while it was being stored`);
  return { ...blob, container: HF_BUNDLE_CONTAINER };
}
