/**
 * GGUF LoRA adapters as llama.cpp reads them (src/llama-adapter.cpp; written by
 * convert_lora_to_gguf.py): `general.type` = adapter, `adapter.type` = lora,
 * `adapter.lora.alpha` (f32), `general.architecture` equal to the base's; per adapted matrix the
 * tensors `blk.{i}.{gguf name}.weight.lora_a` with dims [in, r] and `.lora_b` with dims [r, out]
 * (innermost first), i.e. PEFT's A [r, in] and B [out, r] row-major. llama.cpp adds
 * scale · (alpha / r) · B (A x) to each product, scale being the `--lora-scaled` factor (1 for
 * `--lora`). fedtune already holds llama q/k rows in GGUF order, so no permutation is needed.
 */
import { GGUF_NAMES } from '../arch-names.js';
import { ModelFormatError } from '../checkpoint.js';
import { architectureOf, type Architecture } from '../config.js';
import { closeGgufFile, ggufTensorF32, openGgufFile, type GgufFile } from '../gguf.js';
import { encodeGguf, ggmlBytes, writeGguf, type GgufMetadataEntry, type GgufTensorInput, type GgufWriteInput } from '../gguf-writer.js';
import { loraConfig, type LoraConfig } from '../lora-config.js';
import type { LoraTensor } from '../lora-init.js';
import { MATRIX_NAMES, matrixShape, type MatrixName } from '../weights.js';
import { adapterPairs, adapterTensorNames, type AdapterData, type BaseIdentity } from './adapter-data.js';

/** Tensor types of a GGUF LoRA adapter fedtune writes. */
export type GgufLoraType = 'F32' | 'F16';

/** Options of {@link ggufLoraInput}. */
export interface GgufLoraOptions {
  /** Type of the lora_a / lora_b tensors (default F32). */
  readonly type?: GgufLoraType;
  /** `general.name` (default "fedtune-lora"). */
  readonly name?: string;
}

/** GGUF name of a layer's lora_a / lora_b, e.g. `blk.0.attn_q.weight.lora_a`. */
export function ggufLoraTensorName(layer: number, name: MatrixName, which: 'a' | 'b'): string {
  return `blk.${layer}.${GGUF_NAMES.matrix[name]}.weight.lora_${which}`;
}

/** The GGUF writer input of a LoRA adapter (metadata and tensors). */
export function ggufLoraInput(data: AdapterData, options: GgufLoraOptions = {}): GgufWriteInput {
  const type = options.type ?? 'F32';
  if (type !== 'F32' && type !== 'F16') throw new RangeError(`ggufLoraInput: options.type must be F32 or F16, got "${String(type)}"`);
  const r = data.lora.rank;
  const metadata: GgufMetadataEntry[] = [
    { key: 'general.architecture', type: 'string', value: architectureOf(data.baseConfig) },
    { key: 'general.type', type: 'string', value: 'adapter' },
    { key: 'general.name', type: 'string', value: options.name ?? 'fedtune-lora' },
    { key: 'adapter.type', type: 'string', value: 'lora' },
    { key: 'adapter.lora.alpha', type: 'f32', value: data.lora.alpha },
    // fedtune's own record (llama.cpp ignores it): the base's identity and the full LoRA config
    { key: 'fedtune.base_sha256', type: 'string', value: data.baseSha256 },
    { key: 'fedtune.lora', type: 'string', value: JSON.stringify(data.lora) },
  ];
  const tensors: GgufTensorInput[] = adapterPairs(data, 'ggufLoraInput').flatMap((p) => [
    { name: ggufLoraTensorName(p.layer, p.name, 'a'), type, shape: [p.inp, r], data: ggmlBytes(type, p.a) },
    { name: ggufLoraTensorName(p.layer, p.name, 'b'), type, shape: [r, p.out], data: ggmlBytes(type, p.b) },
  ]);
  return { metadata, tensors };
}

/** Encode a GGUF LoRA adapter in memory. */
export function encodeGgufLora(data: AdapterData, options: GgufLoraOptions = {}): Uint8Array {
  return encodeGguf(ggufLoraInput(data, options));
}

/** Write a GGUF LoRA adapter to `path`. */
export function writeGgufLora(path: string, data: AdapterData, options: GgufLoraOptions = {}): void {
  if (typeof path !== 'string' || path === '') throw new TypeError('writeGgufLora: path must be a non-empty string');
  writeGguf(path, ggufLoraInput(data, options));
}

const KEY = /^blk\.(\d+)\.([a-z_]+)\.weight\.lora_(a|b)$/;

/**
 * Read a GGUF LoRA adapter as fedtune adapter data for `base`. Refuses (ModelFormatError, one
 * sentence naming the file) a file that is not a LoRA adapter, one for another architecture,
 * tensors of modules fedtune does not adapt, mixed ranks, shapes that do not fit the base,
 * missing layers, or an adapter recorded as exported from another base. An adapter without
 * `adapter.lora.alpha` (llama.cpp then scales by 1) gets alpha = r.
 */
export function readGgufLora(path: string, base: BaseIdentity): AdapterData {
  if (typeof path !== 'string' || path === '') throw new TypeError('readGgufLora: path must be a non-empty string');
  if (base === null || typeof base !== 'object' || typeof base.sha256 !== 'string' || typeof base.config !== 'object') throw new TypeError('readGgufLora: base must be { config, sha256 }');
  const file = openGgufFile(path);
  try {
    return readOpen(file, base);
  } finally {
    closeGgufFile(file);
  }
}

function readOpen(file: GgufFile, base: BaseIdentity): AdapterData {
  const src = file.source;
  const bad = (why: string): never => {
    throw new ModelFormatError(`${src} ${why}`);
  };
  const m = file.metadata;
  if (m.get('general.type') !== 'adapter' || m.get('adapter.type') !== 'lora') bad(`is not a GGUF LoRA adapter (general.type ${JSON.stringify(m.get('general.type') ?? null)}, adapter.type ${JSON.stringify(m.get('adapter.type') ?? null)})`);
  const arch = m.get('general.architecture') as Architecture | undefined;
  const baseArch = architectureOf(base.config);
  if (arch !== baseArch) bad(`is an adapter for architecture "${String(arch)}", but the base is "${baseArch}"`);
  const recordedBase = m.get('fedtune.base_sha256');
  if (typeof recordedBase === 'string' && recordedBase !== base.sha256) bad(`was exported from base sha256 ${recordedBase.slice(0, 16)}…, not this base (${base.sha256.slice(0, 16)}…)`);
  const byGguf = new Map<string, MatrixName>(MATRIX_NAMES.map((n) => [GGUF_NAMES.matrix[n], n]));
  const c = base.config;
  let rank: number | undefined;
  const tensors: LoraTensor[] = [];
  const seen = new Set<MatrixName>();
  for (const info of file.tensors) {
    const k = KEY.exec(info.name);
    const name = k ? byGguf.get(k[2]) : undefined;
    if (!k || !name) bad(`holds tensor ${info.name}, which is not a lora_a / lora_b of a matrix fedtune adapts`);
    const layer = Number(k![1]);
    if (layer >= c.nLayers) bad(`holds tensor ${info.name} for layer ${layer}, but the base has ${c.nLayers} layers`);
    const which = k![3];
    const r = which === 'a' ? info.dims[1] : info.dims[0];
    if (info.dims.length !== 2) bad(`tensor ${info.name} has ${info.dims.length} dims, expected 2`);
    rank ??= r;
    if (r !== rank) bad(`mixes ranks ${rank} and ${r} (tensor ${info.name}); fedtune adapters have one rank`);
    const [out, inp] = matrixShape(c, name!);
    const want = which === 'a' ? [inp, rank] : [rank, out];
    if (info.dims[0] !== want[0] || info.dims[1] !== want[1]) bad(`tensor ${info.name} has dims [${info.dims.join(', ')}] but rank ${rank} on this base needs [${want.join(', ')}]`);
    const names = adapterTensorNames(layer, name!);
    tensors.push({ name: which === 'a' ? names.a : names.b, shape: which === 'a' ? [rank, inp] : [out, rank], data: ggufTensorF32(file, info) });
    seen.add(name!);
  }
  if (rank === undefined) bad('holds no LoRA tensors');
  const alphaRaw = m.get('adapter.lora.alpha');
  const alpha = typeof alphaRaw === 'number' && alphaRaw > 0 ? alphaRaw : rank!;
  let lora: LoraConfig = loraConfig({ rank, alpha, targets: MATRIX_NAMES.filter((n) => seen.has(n)) }, src);
  const rec = m.get('fedtune.lora');
  if (typeof rec === 'string') {
    try {
      const r = loraConfig(JSON.parse(rec) as Partial<LoraConfig>, 'fedtune.lora');
      // alpha went through f32: accept the recorded value when it rounds to the stored one
      if (r.rank === lora.rank && Math.fround(r.alpha) === lora.alpha && r.targets.join() === lora.targets.join()) lora = r;
    } catch {
      // unreadable: the GGUF keys alone describe the adapter
    }
  }
  const data: AdapterData = { baseSha256: base.sha256, lora, baseConfig: base.config, tensors };
  try {
    adapterPairs(data, src);
  } catch (e) {
    throw new ModelFormatError((e as Error).message);
  }
  return data;
}
