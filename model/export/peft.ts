/**
 * Hugging Face PEFT LoRA adapters: a directory with adapter_config.json and
 * adapter_model.safetensors, as PEFT's save_pretrained writes them (names from
 * peft/utils/save_and_load.py: the adapter name stripped, `base_model.model.` prefixed to the
 * transformers module path; lora_A.weight [r, in], lora_B.weight [out, r]; config keys from
 * peft/tuners/lora/config.py). fedtune holds llama models in GGUF's interleaved q/k row order,
 * transformers in halves order, so lora_B of q_proj / k_proj is permuted on the way out (and
 * back on the way in): the exported adapter describes the same function on the HF model.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HF_NAMES, hfMatrixName, permuteHalvesToPairs, permutePairsToHalves } from '../arch-names.js';
import { ModelFormatError } from '../checkpoint.js';
import type { LlamaConfig } from '../config.js';
import { ggmlDecode } from '../ggml-types.js';
import { bf16Bytes, f16Bytes, f32Bytes } from '../gguf-writer.js';
import { loraConfig, type LoraConfig } from '../lora-config.js';
import type { LoraTensor } from '../lora-init.js';
import { encodeSafetensors, parseSafetensors, type SafetensorsDtype, type SafetensorsTensor } from '../safetensors.js';
import { MATRIX_NAMES, matrixShape, type MatrixName } from '../weights.js';
import { adapterPairs, adapterTensorNames, type AdapterData, type BaseIdentity } from './adapter-data.js';

/** PEFT's config file name. */
export const PEFT_CONFIG_FILE = 'adapter_config.json';
/** PEFT's weights file name (safetensors). */
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';

/** PEFT's module name (the last part of the transformers path) of each fedtune matrix: q_proj … down_proj. */
export const PEFT_MODULES: Readonly<Record<MatrixName, string>> = Object.freeze(
  Object.fromEntries(MATRIX_NAMES.map((m) => [m, HF_NAMES.matrix[m].split('.').at(-1) as string])) as Record<MatrixName, string>,
);

/** PEFT's state-dict key of a layer's lora_A / lora_B, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export function peftTensorName(layer: number, name: MatrixName, which: 'A' | 'B'): string {
  return `base_model.model.${hfMatrixName(layer, name).replace(/\.weight$/, '')}.lora_${which}.weight`;
}

/**
 * Whether a base's q/k rows are held in interleaved order (llama2.c and llama GGUF files), so
 * lora_B of wq / wk must be permuted to reach transformers' halves order.
 */
export function permutesQK(c: LlamaConfig): boolean {
  return (c.ropeStyle ?? 'interleaved') === 'interleaved';
}

/** lora_B [out, r] rows of `name` in HF order (from fedtune's layout). */
export function bRowsToHf(c: LlamaConfig, name: MatrixName, b: Float32Array, rank: number): Float32Array {
  if (!permutesQK(c) || (name !== 'wq' && name !== 'wk')) return b;
  return permutePairsToHalves(b, name === 'wq' ? c.nHeads : c.nKvHeads, rank);
}

/** lora_B [out, r] rows of `name` in fedtune's layout (from HF order): the inverse of {@link bRowsToHf}. */
export function bRowsFromHf(c: LlamaConfig, name: MatrixName, b: Float32Array, rank: number): Float32Array {
  if (!permutesQK(c) || (name !== 'wq' && name !== 'wk')) return b;
  return permuteHalvesToPairs(b, name === 'wq' ? c.nHeads : c.nKvHeads, rank);
}

/** Options of {@link writePeftAdapter}. */
export interface PeftExportOptions {
  /** `base_model_name_or_path` (a hub id or path), or null when unknown (default). */
  readonly baseModelNameOrPath?: string | null;
  /** Tensor dtype (default F32). */
  readonly dtype?: SafetensorsDtype;
}

/** The adapter_config.json object PEFT writes for a plain LoRA adapter of `data`. */
export function peftAdapterConfig(data: AdapterData, options: PeftExportOptions = {}): Record<string, unknown> {
  const l = data.lora;
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: options.baseModelNameOrPath ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: l.alpha,
    lora_dropout: l.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: l.rank,
    rank_pattern: {},
    revision: null,
    target_modules: l.targets.map((t) => PEFT_MODULES[t]),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/**
 * The safetensors tensors PEFT writes for `data` (lora_A then lora_B of each module, layer-major),
 * with llama q/k lora_B rows in HF order.
 */
export function peftTensors(data: AdapterData, dtype: SafetensorsDtype = 'F32'): SafetensorsTensor[] {
  const encode = dtype === 'F32' ? f32Bytes : dtype === 'F16' ? f16Bytes : dtype === 'BF16' ? bf16Bytes : undefined;
  if (!encode) throw new RangeError(`peftTensors: dtype must be F32, F16 or BF16, got "${String(dtype)}"`);
  const r = data.lora.rank;
  return adapterPairs(data, 'peftTensors').flatMap((p) => [
    { name: peftTensorName(p.layer, p.name, 'A'), dtype, shape: [r, p.inp], data: encode(p.a) },
    { name: peftTensorName(p.layer, p.name, 'B'), dtype, shape: [p.out, r], data: encode(bRowsToHf(data.baseConfig, p.name, p.b, r)) },
  ]);
}

/**
 * Write `data` to `dir` (created if needed) as a PEFT LoRA adapter. The safetensors metadata
 * also records fedtune's base SHA-256 and full LoRA config (PEFT ignores it), so an import onto
 * the same base gives back the identical adapter.
 */
export function writePeftAdapter(dir: string, data: AdapterData, options: PeftExportOptions = {}): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('writePeftAdapter: dir must be a non-empty string');
  const tensors = peftTensors(data, options.dtype ?? 'F32');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, PEFT_CONFIG_FILE), `${JSON.stringify(peftAdapterConfig(data, options), null, 2)}\n`);
  writeFileSync(join(dir, PEFT_WEIGHTS_FILE), encodeSafetensors(tensors, { format: 'pt', 'fedtune.base_sha256': data.baseSha256, 'fedtune.lora': JSON.stringify(data.lora) }));
}

const KEY = /^base_model\.model\.model\.layers\.(\d+)\.((?:self_attn|mlp)\.[a-z_]+)\.lora_(A|B)\.weight$/;

/**
 * Read a PEFT LoRA adapter directory as fedtune adapter data for `base`. Refuses (ModelFormatError,
 * one sentence naming the file) what fedtune cannot represent or what does not fit the base:
 * another PEFT method, DoRA, per-module ranks or alphas, biases, saved modules, transposed
 * weights, unknown modules, missing layers, other ranks or shapes, or an adapter recorded as
 * exported from another base. rsLoRA's scale alpha/√r becomes alpha' = alpha·√r.
 */
export function readPeftAdapter(dir: string, base: BaseIdentity): AdapterData {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('readPeftAdapter: dir must be a non-empty string');
  if (base === null || typeof base !== 'object' || typeof base.sha256 !== 'string' || typeof base.config !== 'object') throw new TypeError('readPeftAdapter: base must be { config, sha256 }');
  const cfgPath = join(dir, PEFT_CONFIG_FILE);
  const wPath = join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelFormatError(`${dir} is not a PEFT adapter directory`);
  if (!existsSync(cfgPath)) throw new ModelFormatError(`${dir} has no ${PEFT_CONFIG_FILE}, so it is not a PEFT adapter`);
  if (!existsSync(wPath)) throw new ModelFormatError(`${dir} has no ${PEFT_WEIGHTS_FILE} (fedtune reads safetensors PEFT adapters only)`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ModelFormatError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  const bad = (why: string): never => {
    throw new ModelFormatError(`${cfgPath} ${why}`);
  };
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) bad('is not a JSON object');
  if (cfg.peft_type !== 'LORA') bad(`has peft_type ${JSON.stringify(cfg.peft_type)}; only LORA adapters can be imported`);
  if (cfg.use_dora === true) bad('describes a DoRA adapter, which fedtune cannot represent');
  if (cfg.fan_in_fan_out === true) bad('stores transposed (fan_in_fan_out) weights, which only Conv1D models use');
  if (cfg.bias !== undefined && cfg.bias !== 'none') bad(`trains biases (bias ${JSON.stringify(cfg.bias)}); fedtune adapters have none`);
  if (Array.isArray(cfg.modules_to_save) && cfg.modules_to_save.length > 0) bad(`saves whole modules (${cfg.modules_to_save.join(', ')}), which fedtune cannot represent`);
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[k];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) bad(`sets ${k}; fedtune adapters have one rank and one alpha`);
  }
  const r = cfg.r ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) bad(`has r ${JSON.stringify(cfg.r)}, not a positive integer`);
  const loraAlpha = cfg.lora_alpha ?? 8;
  if (typeof loraAlpha !== 'number' || !(loraAlpha > 0)) bad(`has lora_alpha ${JSON.stringify(cfg.lora_alpha)}, not a positive number`);
  const dropout = cfg.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad(`has lora_dropout ${JSON.stringify(cfg.lora_dropout)}, not in [0, 1)`);
  const rank = r as number;
  const alpha = cfg.use_rslora === true ? (loraAlpha as number) * Math.sqrt(rank) : (loraAlpha as number);
  const moduleToMatrix = new Map<string, MatrixName>(MATRIX_NAMES.map((m) => [HF_NAMES.matrix[m], m]));
  const listed = Array.isArray(cfg.target_modules) ? (cfg.target_modules as unknown[]) : undefined;
  if (listed) {
    for (const t of listed) if (typeof t !== 'string' || !MATRIX_NAMES.some((m) => PEFT_MODULES[m] === t)) bad(`targets ${JSON.stringify(t)}, which fedtune cannot adapt (it adapts ${Object.values(PEFT_MODULES).join(', ')})`);
  }

  let file;
  try {
    file = parseSafetensors(readFileSync(wPath), wPath);
  } catch (e) {
    throw new ModelFormatError((e as Error).message);
  }
  const wbad = (why: string): never => {
    throw new ModelFormatError(`${wPath} ${why}`);
  };
  const c = base.config;
  const tensors: LoraTensor[] = [];
  const seen = new Set<MatrixName>();
  for (const t of file.tensors) {
    const m = KEY.exec(t.name);
    const name = m ? moduleToMatrix.get(m[2]) : undefined;
    if (!m || !name) wbad(`holds tensor ${t.name}, which is not a LoRA A/B weight of a module fedtune adapts`);
    const layer = Number(m![1]);
    if (layer >= c.nLayers) wbad(`holds tensor ${t.name} for layer ${layer}, but the base has ${c.nLayers} layers`);
    const [out, inp] = matrixShape(c, name!);
    const which = m![3] as 'A' | 'B';
    const want: [number, number] = which === 'A' ? [rank, inp] : [out, rank];
    if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      wbad(`tensor ${t.name} has shape [${t.shape.join(', ')}] but rank ${rank} on this base needs [${want.join(', ')}]`);
    }
    const n = want[0] * want[1];
    const values = ggmlDecode(t.dtype, t.data, n, new Float32Array(n));
    const names = adapterTensorNames(layer, name!);
    tensors.push({ name: which === 'A' ? names.a : names.b, shape: want, data: which === 'A' ? values : bRowsFromHf(c, name!, values, rank) });
    seen.add(name!);
  }
  if (tensors.length === 0) wbad('holds no LoRA tensors');
  const targets = MATRIX_NAMES.filter((m) => seen.has(m));
  if (listed && listed.length !== targets.length) {
    const missing = listed.filter((t) => !targets.some((m) => PEFT_MODULES[m] === t));
    wbad(`has no tensors for target module ${missing.join(', ')} named in ${PEFT_CONFIG_FILE}`);
  }
  let lora: LoraConfig = loraConfig({ rank, alpha, targets, dropout: dropout as number }, cfgPath);
  const meta = file.metadata;
  if (meta['fedtune.base_sha256'] !== undefined && meta['fedtune.base_sha256'] !== base.sha256) {
    wbad(`was exported from base sha256 ${meta['fedtune.base_sha256'].slice(0, 16)}…, not this base (${base.sha256.slice(0, 16)}…)`);
  }
  if (meta['fedtune.lora'] !== undefined) {
    // keep the fields PEFT has no place for (seed, freezeA) when the rest agrees
    try {
      const rec = loraConfig(JSON.parse(meta['fedtune.lora']) as Partial<LoraConfig>, 'fedtune.lora');
      if (rec.rank === lora.rank && rec.alpha === lora.alpha && rec.dropout === lora.dropout && rec.targets.join() === lora.targets.join()) lora = rec;
    } catch {
      // unreadable: the PEFT config alone describes the adapter
    }
  }
  const data: AdapterData = { baseSha256: base.sha256, lora, baseConfig: base.config, tensors };
  try {
    adapterPairs(data, wPath);
  } catch (e) {
    throw new ModelFormatError((e as Error).message);
  }
  return data;
}
