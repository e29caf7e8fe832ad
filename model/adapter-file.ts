/**
 * Adapter files: safetensors (8-byte little-endian header length, JSON header, raw data), so
 * PEFT-style tools can read them, with fedtune's metadata in `__metadata__`:
 * format "fedtune-lora", format_version "1", base_sha256, lora (JSON LoRA config) and
 * base_config (JSON architecture). Tensors are F32, named `layers.{l}.{target}.lora_A` [r, in]
 * and `…lora_B` [out, r]. This file is the format over plain tensors, without TensorFlow.js (the
 * coordinator uses it); lora-adapter-file.ts reads and writes LoraAdapters through it.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { LlamaConfig } from './config.js';
import type { LoraTensor } from './lora-init.js';
import { loraConfig, type LoraConfig } from './lora-config.js';
import { encodeSafetensors, readSafetensorsHeader } from './safetensors.js';

/** The adapter format written by this version. */
export const ADAPTER_FORMAT = 'fedtune-lora';
/** Format version written by this version (and the newest it reads). */
export const ADAPTER_FORMAT_VERSION = 1;

/** An adapter file that is malformed, or does not fit the base it is loaded onto. */
export class AdapterFileError extends Error {
  override name = 'AdapterFileError';
}

/** What an adapter file records besides its tensors. */
export interface AdapterHeader {
  readonly formatVersion: number;
  readonly baseSha256: string;
  readonly lora: LoraConfig;
  readonly baseConfig: LlamaConfig;
}

/** Encode adapter tensors (standard layout) with their header as safetensors bytes, without TensorFlow.js. */
export function encodeAdapterTensors(meta: Omit<AdapterHeader, 'formatVersion'>, tensors: readonly LoraTensor[]): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(meta.baseSha256)) throw new RangeError(`encodeAdapterTensors: baseSha256 must be a hex SHA-256, got "${meta.baseSha256}"`);
  const header: Record<string, unknown> = {
    __metadata__: {
      format: ADAPTER_FORMAT,
      format_version: String(ADAPTER_FORMAT_VERSION),
      base_sha256: meta.baseSha256,
      lora: JSON.stringify(loraConfig(meta.lora, 'encodeAdapterTensors')),
      base_config: JSON.stringify(meta.baseConfig),
    },
  };
  const meta_ = header.__metadata__ as Record<string, string>;
  return encodeSafetensors(
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })),
    meta_,
  );
}

/** Parse the header of adapter bytes and return it with the tensors. */
export function decodeAdapterFile(bytes: Uint8Array, source = '<buffer>'): { header: AdapterHeader; tensors: LoraTensor[] } {
  const bad = (why: string): never => {
    throw new AdapterFileError(`${source} is not a fedtune adapter: ${why}`);
  };
  const { header, n } = readSafetensorsHeader(bytes, bad);
  const meta = (header.__metadata__ ?? {}) as Record<string, string>;
  if (meta.format !== ADAPTER_FORMAT) bad(`format is "${meta.format ?? '(none)'}", expected "${ADAPTER_FORMAT}"`);
  const version = Number(meta.format_version);
  if (!Number.isInteger(version) || version < 1) bad(`bad format_version "${meta.format_version}"`);
  if (version > ADAPTER_FORMAT_VERSION) {
    throw new AdapterFileError(`${source} uses adapter format version ${version}; this fedtune reads up to version ${ADAPTER_FORMAT_VERSION}`);
  }
  if (!/^[0-9a-f]{64}$/.test(meta.base_sha256 ?? '')) bad('base_sha256 is missing or malformed');
  let lora: LoraConfig;
  let baseConfig: LlamaConfig;
  try {
    lora = loraConfig(JSON.parse(meta.lora) as Partial<LoraConfig>, 'adapter file');
    baseConfig = JSON.parse(meta.base_config) as LlamaConfig;
  } catch (e) {
    return bad(`bad LoRA or base config: ${(e as Error).message}`);
  }
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const tensors: LoraTensor[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = v as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    if (t.dtype !== 'F32') bad(`tensor ${name} has dtype ${t.dtype}, expected F32`);
    const [s, e] = t.data_offsets ?? [];
    const shape = t.shape ?? [];
    if (shape.length !== 2 || !Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > dataLen || e - s !== shape[0] * shape[1] * 4) {
      bad(`tensor ${name} has inconsistent shape [${shape}] or offsets [${s}, ${e}]`);
    }
    const data = new Float32Array(shape[0] * shape[1]);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + s, dataStart + e));
    tensors.push({ name, shape: [shape[0], shape[1]], data });
  }
  return { header: { formatVersion: version, baseSha256: meta.base_sha256, lora, baseConfig }, tensors };
}

/** Write adapter file bytes atomically (temp file + rename); AdapterFileError naming the path if it fails. */
export function writeAdapterBytes(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new AdapterFileError(`cannot write adapter ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
