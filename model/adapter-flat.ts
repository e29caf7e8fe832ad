/**
 * Adapters as plain arrays, without TensorFlow.js: the flat vector layout that federated
 * updates use (see {@link LoraAdapter.toFlat}), its conversion to and from the standard tensors,
 * and a fresh adapter's values. The coordinator works on these; devices use LoraAdapter.
 */
import type { LlamaConfig } from './config.js';
import { initialA, transpose, type LoraTensor } from './lora-init.js';
import { loraConfig, type LoraConfig } from './lora-config.js';
import { matrixShape, type MatrixName } from './weights.js';

/** Where one adapted matrix's Aᵀ [in, r] and Bᵀ [r, out] sit in the flat vector. */
export interface FlatSegment {
  readonly layer: number;
  readonly name: MatrixName;
  readonly inDim: number;
  readonly outDim: number;
  /** Offset of Aᵀ; Bᵀ follows at aOffset + inDim·r. */
  readonly aOffset: number;
  readonly bOffset: number;
}

/** The flat layout: pairs layer-major in target order, Aᵀ then Bᵀ, each row-major. */
export function flatLayout(baseConfig: LlamaConfig, lora: LoraConfig): { segments: FlatSegment[]; length: number } {
  const cfg = loraConfig(lora, 'flatLayout');
  const segments: FlatSegment[] = [];
  let off = 0;
  for (let layer = 0; layer < baseConfig.nLayers; layer++) {
    for (const name of cfg.targets) {
      const [outDim, inDim] = matrixShape(baseConfig, name);
      segments.push({ layer, name, inDim, outDim, aOffset: off, bOffset: off + inDim * cfg.rank });
      off += (inDim + outDim) * cfg.rank;
    }
  }
  return { segments, length: off };
}

/** Flat values of a fresh adapter: A from the config's seed (as LoraAdapter.create draws it), B = 0. */
export function initialAdapterFlat(baseConfig: LlamaConfig, lora: LoraConfig): Float32Array {
  const cfg = loraConfig(lora, 'initialAdapterFlat');
  const { segments, length } = flatLayout(baseConfig, cfg);
  const flat = new Float32Array(length);
  for (const s of segments) flat.set(transpose(initialA(cfg, s.layer, s.name, s.inDim), cfg.rank, s.inDim), s.aOffset);
  return flat;
}

/** Flat vector → tensors in the standard layout (A [r, in], B [out, r]), as adapter files hold them. */
export function adapterTensorsFromFlat(baseConfig: LlamaConfig, lora: LoraConfig, flat: Float32Array): LoraTensor[] {
  const cfg = loraConfig(lora, 'adapterTensorsFromFlat');
  const { segments, length } = flatLayout(baseConfig, cfg);
  if (!(flat instanceof Float32Array)) throw new TypeError('adapterTensorsFromFlat: flat must be a Float32Array');
  if (flat.length !== length) throw new RangeError(`adapterTensorsFromFlat: flat has ${flat.length} values, this base and LoRA config need ${length}`);
  const r = cfg.rank;
  return segments.flatMap((s) => [
    { name: `layers.${s.layer}.${s.name}.lora_A`, shape: [r, s.inDim] as [number, number], data: transpose(flat.subarray(s.aOffset, s.aOffset + s.inDim * r), s.inDim, r) },
    { name: `layers.${s.layer}.${s.name}.lora_B`, shape: [s.outDim, r] as [number, number], data: transpose(flat.subarray(s.bOffset, s.bOffset + r * s.outDim), r, s.outDim) },
  ]);
}

/** Tensors in the standard layout → flat vector; throws RangeError naming a missing or misshapen tensor. */
export function adapterFlatFromTensors(baseConfig: LlamaConfig, lora: LoraConfig, tensors: readonly LoraTensor[]): Float32Array {
  const cfg = loraConfig(lora, 'adapterFlatFromTensors');
  const { segments, length } = flatLayout(baseConfig, cfg);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const flat = new Float32Array(length);
  const r = cfg.rank;
  const take = (name: string, rows: number, cols: number): Float32Array => {
    const t = byName.get(name);
    if (!t) throw new RangeError(`adapterFlatFromTensors: missing tensor ${name}`);
    if (t.shape[0] !== rows || t.shape[1] !== cols || t.data.length !== rows * cols) throw new RangeError(`adapterFlatFromTensors: ${name} has shape [${t.shape}], expected [${rows}, ${cols}]`);
    return t.data;
  };
  for (const s of segments) {
    flat.set(transpose(take(`layers.${s.layer}.${s.name}.lora_A`, r, s.inDim), r, s.inDim), s.aOffset);
    flat.set(transpose(take(`layers.${s.layer}.${s.name}.lora_B`, s.outDim, r), s.outDim, r), s.bOffset);
  }
  if (byName.size !== segments.length * 2) throw new RangeError(`adapterFlatFromTensors: ${byName.size - segments.length * 2} tensors do not belong to this LoRA config`);
  return flat;
}

/**
 * The parts of the flat vector a device trains and sends: everything, or under FFA-LoRA
 * (`freezeA`) only the B blocks — A never changes, so its delta is zero and need not travel.
 * Ranges are [offset, length] in flat order.
 */
export function trainableRanges(baseConfig: LlamaConfig, lora: LoraConfig): { ranges: [number, number][]; length: number; total: number } {
  const cfg = loraConfig(lora, 'trainableRanges');
  const { segments, length: total } = flatLayout(baseConfig, cfg);
  if (!cfg.freezeA) return { ranges: [[0, total]], length: total, total };
  const ranges = segments.map((s): [number, number] => [s.bOffset, s.outDim * cfg.rank]);
  return { ranges, length: ranges.reduce((n, r) => n + r[1], 0), total };
}

/** The trainable values of a flat vector, packed (see {@link trainableRanges}). */
export function packTrainable(flat: Float32Array, ranges: readonly [number, number][]): Float32Array {
  const out = new Float32Array(ranges.reduce((n, r) => n + r[1], 0));
  let off = 0;
  for (const [start, len] of ranges) {
    out.set(flat.subarray(start, start + len), off);
    off += len;
  }
  return out;
}

/** A packed vector back in flat layout, zeros elsewhere. */
export function unpackTrainable(packed: Float32Array, ranges: readonly [number, number][], total: number): Float32Array {
  const out = new Float32Array(total);
  let off = 0;
  for (const [start, len] of ranges) {
    out.set(packed.subarray(off, off + len), start);
    off += len;
  }
  if (off !== packed.length) throw new RangeError(`unpackTrainable: packed has ${packed.length} values, the ranges hold ${off}`);
  return out;
}

/**
 * Heterogeneous ranks: the first `rank` components of an adapter's tensors (A's first rows, B's
 * first columns), for a device that trains a smaller rank than the program's. With alpha scaled
 * by rank/r the truncated adapter's scale α/r is unchanged.
 */
export function truncateRankTensors(tensors: readonly LoraTensor[], rank: number): LoraTensor[] {
  if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`truncateRankTensors: rank must be a positive integer, got ${rank}`);
  return tensors.map((t) => {
    const isA = t.name.endsWith('.lora_A');
    const [rows, cols] = t.shape;
    const r = isA ? rows : cols;
    if (rank > r) throw new RangeError(`truncateRankTensors: rank ${rank} exceeds ${t.name}'s rank ${r}`);
    if (isA) return { name: t.name, shape: [rank, cols] as [number, number], data: t.data.slice(0, rank * cols) };
    const data = new Float32Array(rows * rank);
    for (let o = 0; o < rows; o++) data.set(t.data.subarray(o * cols, o * cols + rank), o * rank);
    return { name: t.name, shape: [rows, rank] as [number, number], data };
  });
}

/** A flat vector of a rank-`lowRank` adapter placed in the layout of rank `lora.rank`, zeros in the extra components. */
export function padRankFlat(baseConfig: LlamaConfig, lora: LoraConfig, lowRank: number, low: Float32Array): Float32Array {
  const cfg = loraConfig(lora, 'padRankFlat');
  if (!Number.isInteger(lowRank) || lowRank < 1 || lowRank > cfg.rank) throw new RangeError(`padRankFlat: lowRank must be an integer in [1, ${cfg.rank}], got ${lowRank}`);
  const hi = flatLayout(baseConfig, cfg);
  const lo = flatLayout(baseConfig, { ...cfg, rank: lowRank });
  if (low.length !== lo.length) throw new RangeError(`padRankFlat: low has ${low.length} values, rank ${lowRank} needs ${lo.length}`);
  const out = new Float32Array(hi.length);
  const r = cfg.rank;
  hi.segments.forEach((s, k) => {
    const l = lo.segments[k];
    // Aᵀ [in, r] ← Aᵀ [in, lowRank]; Bᵀ [r, out] ← Bᵀ [lowRank, out]
    for (let i = 0; i < s.inDim; i++) out.set(low.subarray(l.aOffset + i * lowRank, l.aOffset + (i + 1) * lowRank), s.aOffset + i * r);
    out.set(low.subarray(l.bOffset, l.bOffset + lowRank * s.outDim), s.bOffset);
  });
  return out;
}
