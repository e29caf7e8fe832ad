/**
 * LoraAdapters to and from adapter files (the format is in adapter-file.ts): encoding an
 * adapter, decoding bytes onto a base (refusing a file made for another base), and atomic
 * saving and loading.
 */
import { readFileSync } from 'node:fs';
import { AdapterFileError, decodeAdapterFile, encodeAdapterTensors, writeAdapterBytes } from './adapter-file.js';
import type { LlamaConfig } from './config.js';
import { LoraAdapter } from './lora.js';

/** Encode an adapter as safetensors bytes. */
export function encodeAdapter(adapter: LoraAdapter): Uint8Array {
  return encodeAdapterTensors({ baseSha256: adapter.baseSha256, lora: adapter.config, baseConfig: adapter.baseConfig }, adapter.toTensors());
}

/**
 * Decode adapter bytes onto a base, identified by its config and SHA-256. Throws
 * AdapterFileError if the file was made for another base or its shapes do not fit.
 */
export function decodeAdapter(bytes: Uint8Array, base: { config: LlamaConfig; sha256: string }, source = '<buffer>'): LoraAdapter {
  const { header, tensors } = decodeAdapterFile(bytes, source);
  if (header.baseSha256 !== base.sha256) {
    throw new AdapterFileError(
      `${source} was trained for base model sha256 ${header.baseSha256.slice(0, 16)}…, but the loaded base is ${base.sha256.slice(0, 16)}…; use the base it was made for`,
    );
  }
  try {
    return LoraAdapter.fromTensors(base.config, base.sha256, header.lora, tensors);
  } catch (e) {
    throw new AdapterFileError(`${source} does not fit the base: ${(e as Error).message}`);
  }
}

/** Write an adapter file atomically (temp file + rename). */
export function saveAdapter(path: string, adapter: LoraAdapter): void {
  writeAdapterBytes(path, encodeAdapter(adapter));
}


/** Read an adapter file for a base. */
export function loadAdapter(path: string, base: { config: LlamaConfig; sha256: string }): LoraAdapter {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AdapterFileError(`cannot read adapter ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return decodeAdapter(bytes, base, path);
}
