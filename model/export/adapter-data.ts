/**
 * An adapter as plain data (header and float32 tensors, no TensorFlow.js): what every export
 * reads and every import produces. Checks that the tensors are exactly those the LoRA config and
 * base architecture call for, and that an adapter belongs to a given base.
 */
import { readFileSync } from 'node:fs';
import { AdapterFileError, decodeAdapterFile, encodeAdapterTensors, writeAdapterBytes } from '../adapter-file.js';
import type { LlamaConfig } from '../config.js';
import { loraConfig, type LoraConfig } from '../lora-config.js';
import type { LoraTensor } from '../lora-init.js';
import { matrixShape, type MatrixName } from '../weights.js';

/** A fedtune adapter as data: its header fields and tensors (A [r, in], B [out, r], standard names). */
export interface AdapterData {
  /** SHA-256 of the base the adapter was made for. */
  readonly baseSha256: string;
  readonly lora: LoraConfig;
  readonly baseConfig: LlamaConfig;
  readonly tensors: readonly LoraTensor[];
}

/** One adapted matrix of {@link AdapterData}. */
export interface AdapterPair {
  readonly layer: number;
  readonly name: MatrixName;
  /** [r, in] */
  readonly a: Float32Array;
  /** [out, r] */
  readonly b: Float32Array;
  readonly out: number;
  readonly inp: number;
}

/** The standard tensor names of one adapted matrix. */
export function adapterTensorNames(layer: number, name: MatrixName): { a: string; b: string } {
  return { a: `layers.${layer}.${name}.lora_A`, b: `layers.${layer}.${name}.lora_B` };
}

/**
 * The pairs of an adapter, layer-major in target order, after checking that its tensors are
 * exactly every layer × target with the shapes the base and rank imply and finite values.
 * Throws RangeError naming `source` and what is wrong.
 */
export function adapterPairs(data: AdapterData, source = 'adapter'): AdapterPair[] {
  const byName = new Map(data.tensors.map((t) => [t.name, t]));
  const r = data.lora.rank;
  const pairs: AdapterPair[] = [];
  for (let layer = 0; layer < data.baseConfig.nLayers; layer++) {
    for (const name of data.lora.targets) {
      const [out, inp] = matrixShape(data.baseConfig, name);
      const n = adapterTensorNames(layer, name);
      const get = (key: string, shape: [number, number]): Float32Array => {
        const t = byName.get(key);
        if (!t) throw new RangeError(`${source}: missing tensor ${key} (rank ${r}, targets ${data.lora.targets.join(',')})`);
        if (t.shape[0] !== shape[0] || t.shape[1] !== shape[1] || t.data.length !== shape[0] * shape[1]) throw new RangeError(`${source}: tensor ${key} has shape [${t.shape.join(', ')}] but the base and rank need [${shape.join(', ')}]`);
        for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) throw new RangeError(`${source}: tensor ${key} holds a non-finite value at ${i}`);
        return t.data;
      };
      pairs.push({ layer, name, a: get(n.a, [r, inp]), b: get(n.b, [out, r]), out, inp });
    }
  }
  if (byName.size !== pairs.length * 2) {
    const known = new Set(pairs.flatMap((p) => Object.values(adapterTensorNames(p.layer, p.name))));
    const extra = [...byName.keys()].filter((k) => !known.has(k));
    throw new RangeError(`${source}: tensor ${extra[0]} does not belong to the LoRA config (rank ${r}, targets ${data.lora.targets.join(',')})`);
  }
  return pairs;
}

/** Read a fedtune adapter file as data (tensors checked against its own config). */
export function readAdapterData(path: string): AdapterData {
  if (typeof path !== 'string' || path === '') throw new TypeError('readAdapterData: path must be a non-empty string');
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AdapterFileError(`cannot read adapter ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const { header, tensors } = decodeAdapterFile(bytes, path);
  const data: AdapterData = { baseSha256: header.baseSha256, lora: header.lora, baseConfig: header.baseConfig, tensors };
  try {
    adapterPairs(data, path);
  } catch (e) {
    throw new AdapterFileError((e as Error).message);
  }
  return data;
}

/** Encode adapter data as a fedtune adapter file's bytes. */
export function encodeAdapterData(data: AdapterData): Uint8Array {
  adapterPairs(data, 'encodeAdapterData');
  return encodeAdapterTensors({ baseSha256: data.baseSha256, lora: loraConfig(data.lora, 'encodeAdapterData'), baseConfig: data.baseConfig }, data.tensors);
}

/** Write adapter data as a fedtune adapter file, atomically (temp file + rename). */
export function writeAdapterData(path: string, data: AdapterData): void {
  writeAdapterBytes(path, encodeAdapterData(data));
}

/** The identity of a base an adapter is checked against. */
export interface BaseIdentity {
  readonly config: LlamaConfig;
  readonly sha256: string;
}

/**
 * Refuse (AdapterFileError, one sentence naming the files) an adapter that was not made for this
 * base: another SHA-256, or an architecture that differs.
 */
export function checkAdapterBase(data: AdapterData, base: BaseIdentity, adapterSource: string, baseSource: string): void {
  if (data.baseSha256 !== base.sha256) {
    throw new AdapterFileError(`${adapterSource} was trained for base sha256 ${data.baseSha256.slice(0, 16)}…, but ${baseSource} is ${base.sha256.slice(0, 16)}…; give the base it was made for`);
  }
  if (!sameConfig(data.baseConfig, base.config)) throw new AdapterFileError(`${adapterSource} records a base architecture that differs from ${baseSource}'s`);
}

/** Whether two configs describe the same architecture (field by field, order-insensitive). */
export function sameConfig(a: LlamaConfig, b: LlamaConfig): boolean {
  const norm = (c: LlamaConfig): string => JSON.stringify(Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined).sort(([x], [y]) => (x < y ? -1 : 1))));
  return norm(a) === norm(b);
}
