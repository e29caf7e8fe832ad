/**
 * What `fedtune inspect` reports about a base, read from its headers only (GGUF header and
 * tensor directory, safetensors headers, llama2.c header) — never its weights, never
 * TensorFlow.js — plus the identity hash. Each tensor's shape is checked against the config, as
 * the loaders would, so a file inspect accepts is one the model commands can open.
 */
import { ARCHITECTURE_TRAITS, GGUF_NAMES, ggufMatrixName, ggufVectorName, HF_NAMES, hfMatrixName, hfVectorName, layerVectors, type LayerVectorName } from '../model/arch-names.js';
import { readBaseInfo, type BaseFormat } from '../model/base-info.js';
import { checkpointLayout, CHECKPOINT_DATA_OFFSET, ModelFormatError } from '../model/checkpoint.js';
import { architectureOf, headSize, kvDim, parameterCount, qDim, type LlamaConfig } from '../model/config.js';
import { detectChatStyle, type ChatFormat } from '../model/chat-format.js';
import { ggmlTensorBytes, ggmlType } from '../model/ggml-types.js';
import { closeGgufFile, GGML_TYPE, openGgufFile } from '../model/gguf.js';
import { readHfLayout } from '../model/hf-files.js';
import type { SpecialToken } from '../model/text-tokenizer.js';
import { MATRIX_NAMES, matrixShape } from '../model/weights.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { baseChatTemplate, formatErrors, openTokenizer, type BaseFiles } from './base-files.js';

/** Tensors of one storage type: how many, and their data bytes. */
export interface TensorTypeStats {
  readonly tensors: number;
  readonly bytes: number;
}

/** Everything `fedtune inspect` says about a base. */
export interface BaseReport {
  readonly path: string;
  readonly format: BaseFormat;
  /** Identity: SHA-256 of the file (of the file listing, for a directory). */
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly architecture: string;
  /** Parameters of the model (a tied head counted once). */
  readonly parameters: number;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly contextLength: number;
  readonly normEps: number;
  readonly rope: { readonly style: string; readonly theta: number; readonly freqFactors: boolean };
  readonly attnBias: boolean;
  readonly qkNorm: boolean;
  readonly tiedHead: boolean;
  /** By storage type (GGML type name, or safetensors dtype). */
  readonly tensorTypes: Record<string, TensorTypeStats>;
  readonly tokenizer: {
    readonly kind: 'sentencepiece' | 'bpe';
    readonly vocabSize: number;
    readonly bosId: number;
    readonly eosId: number;
    readonly startId: number;
    readonly addBos: boolean;
    readonly specialTokens: readonly SpecialToken[];
  };
  /** The chat format, from the base's chat template or else its special tokens; null when neither names one. */
  readonly chat: { readonly format: ChatFormat; readonly source: 'template' | 'vocabulary'; readonly defaultSystem?: string } | null;
}

/** The expected shapes of every weight tensor, outermost dimension first, by neutral key. */
function expectedShapes(c: LlamaConfig): Map<string, { gguf: string; hf: string; shape: number[] }> {
  const m = new Map<string, { gguf: string; hf: string; shape: number[] }>();
  const vec: Record<LayerVectorName, number> = { rmsAtt: c.dim, rmsFfn: c.dim, bq: qDim(c), bk: kvDim(c), bv: kvDim(c), qNorm: headSize(c), kNorm: headSize(c) };
  m.set('embedding', { gguf: `${GGUF_NAMES.tokenEmbedding}.weight`, hf: HF_NAMES.tokenEmbedding, shape: [c.vocabSize, c.dim] });
  m.set('final', { gguf: `${GGUF_NAMES.rmsFinal}.weight`, hf: HF_NAMES.rmsFinal, shape: [c.dim] });
  if (!c.sharedClassifier) m.set('classifier', { gguf: `${GGUF_NAMES.classifier}.weight`, hf: HF_NAMES.classifier, shape: [c.vocabSize, c.dim] });
  for (let l = 0; l < c.nLayers; l++) {
    for (const n of MATRIX_NAMES) m.set(`${l}.${n}`, { gguf: ggufMatrixName(l, n), hf: hfMatrixName(l, n), shape: matrixShape(c, n) });
    for (const n of layerVectors(c)) m.set(`${l}.${n}`, { gguf: ggufVectorName(l, n), hf: hfVectorName(l, n), shape: [vec[n]] });
  }
  return m;
}

function add(stats: Record<string, TensorTypeStats>, type: string, bytes: number): void {
  const s = stats[type] ?? { tensors: 0, bytes: 0 };
  stats[type] = { tensors: s.tensors + 1, bytes: s.bytes + bytes };
}

function checkShape(source: string, name: string, got: readonly number[] | undefined, want: readonly number[], from: string): void {
  if (!got) throw new ModelFormatError(`${source} lacks the tensor ${name}`);
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) throw new ModelFormatError(`${source}: tensor ${name} has shape [${got.join(', ')}] but ${from} implies [${want.join(', ')}]`);
}

/** Tensor types of a GGUF file; an unsupported type or a shape the config contradicts throws ModelFormatError. */
function ggufTensorTypes(path: string, config: LlamaConfig): Record<string, TensorTypeStats> {
  const file = openGgufFile(path);
  try {
    const stats: Record<string, TensorTypeStats> = {};
    const byName = new Map(file.tensors.map((t) => [t.name, t]));
    for (const t of file.tensors) {
      const type = ggmlType(t.type);
      if (!type) throw new ModelFormatError(`${path}: tensor "${t.name}" has GGML type ${t.type}, which is not supported (${Object.keys(GGML_TYPE).join(', ')} are)`);
      add(stats, type.name, ggmlTensorBytes(type, t.dims.reduce((a, b) => a * b, 1)));
    }
    // GGUF lists dimensions innermost first
    for (const e of expectedShapes(config).values()) checkShape(path, e.gguf, byName.get(e.gguf)?.dims.slice().reverse(), e.shape, `its ${architectureOf(config)} metadata`);
    return stats;
  } finally {
    closeGgufFile(file);
  }
}

/** Tensor dtypes of a Hugging Face directory; a shape config.json contradicts throws ModelFormatError. */
function hfTensorTypes(dir: string, config: LlamaConfig): Record<string, TensorTypeStats> {
  const layout = readHfLayout(dir);
  const stats: Record<string, TensorTypeStats> = {};
  for (const t of layout.tensors.values()) add(stats, t.dtype, t.end - t.start);
  for (const e of expectedShapes(config).values()) checkShape(layout.weightsSource, e.hf, layout.tensors.get(e.hf)?.shape, e.shape, 'config.json');
  return stats;
}

/** A llama2.c checkpoint's arrays: all float32, as its export writes them (the RoPE table as two arrays, cos and sin). */
function llama2cTensorTypes(path: string): Record<string, TensorTypeStats> {
  const fd = openSync(path, 'r');
  try {
    const header = new Uint8Array(CHECKPOINT_DATA_OFFSET);
    readSync(fd, header, 0, header.length, 0);
    const stats: Record<string, TensorTypeStats> = {};
    for (const s of checkpointLayout(header, fstatSync(fd).size, path).segments) {
      const parts = s.name === 'rope' ? 2 : s.parts;
      for (let i = 0; i < parts; i++) add(stats, 'F32', (s.floats / parts) * 4);
    }
    return stats;
  } finally {
    closeSync(fd);
  }
}

/** Read a base's report (headers only, plus the identity hash); a bad file throws CliError naming it. */
export function baseReport(files: BaseFiles): BaseReport {
  const tokenizer = openTokenizer(files);
  return formatErrors(() => {
    const { basePath: path, format } = files;
    const info = readBaseInfo(path);
    const c = info.config;
    const tensorTypes = format === 'gguf' ? ggufTensorTypes(path, c) : format === 'hf' ? hfTensorTypes(path, c) : llama2cTensorTypes(path);
    const template = baseChatTemplate(files);
    const specials = tokenizer.specialTokens();
    const hasTemplate = template !== undefined && template.trim() !== '';
    const style = detectChatStyle(hasTemplate ? template : undefined, specials);
    return {
      path,
      format,
      sha256: info.sha256,
      sizeBytes: info.sizeBytes,
      architecture: architectureOf(c),
      parameters: parameterCount(c),
      dim: c.dim,
      hiddenDim: c.hiddenDim,
      nLayers: c.nLayers,
      nHeads: c.nHeads,
      nKvHeads: c.nKvHeads,
      headDim: headSize(c),
      contextLength: c.seqLen,
      normEps: c.normEps,
      rope: { style: c.ropeStyle ?? ARCHITECTURE_TRAITS[architectureOf(c)].ggufRopeStyle, theta: c.ropeTheta, freqFactors: c.ropeFreqFactors !== undefined },
      attnBias: c.attnBias === true,
      qkNorm: c.qkNorm === true,
      tiedHead: c.sharedClassifier,
      tensorTypes,
      tokenizer: {
        kind: tokenizer.kind,
        vocabSize: tokenizer.vocabSize,
        bosId: tokenizer.bosId,
        eosId: tokenizer.eosId,
        startId: tokenizer.startId,
        addBos: tokenizer.addBos,
        specialTokens: specials.map((s) => ({ id: s.id, text: s.text })),
      },
      chat: style ? { format: style.format, source: hasTemplate ? 'template' : 'vocabulary', ...(style.defaultSystem !== undefined ? { defaultSystem: style.defaultSystem } : {}) } : null,
    };
  });
}
