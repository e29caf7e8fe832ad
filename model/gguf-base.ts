/**
 * A GGUF file's model as a fedtune base: the architecture read from `{arch}.*` metadata and the
 * tensors present (biases, q/k norms, rope_freqs), and the weights read tensor by tensor into
 * the frozen formats — never the whole model in float32 at once unless `none` is asked for.
 * Identity: the SHA-256 of the file's bytes.
 */
import { createHash } from 'node:crypto';
import { GGUF_NAMES, ggufMatrixName, ggufVectorName, layerVectors, type LayerVectorName } from './arch-names.js';
import { ggufConfig, tensorMap } from './gguf-config.js';
import { ModelFormatError, type LoadedBase } from './checkpoint.js';
import { sha256OfFd } from './file-hash.js';
import { headSize, kvDim, qDim, type LlamaConfig } from './config.js';
import { defaultHeadQuant, FrozenBase } from './frozen-base.js';
import { closeGgufFile, GGML_TYPE, ggufTensorF32, ggufTensorQuantized, openGgufFile, parseGguf, type GgufFile, type GgufTensorInfo } from './gguf.js';
import { quantize, QUANT_MODES, type QuantizedArray, type QuantMode } from './quant.js';
import { MATRIX_NAMES, matrixShape, type LayerWeights, type MatrixName } from './weights.js';

/** A tensor's shape in GGUF order (innermost first) for the config. */
function expectInfo(file: GgufFile, tensors: Map<string, GgufTensorInfo>, name: string, shape: readonly number[]): GgufTensorInfo {
  const t = tensors.get(name);
  if (!t) throw new ModelFormatError(`${file.source} lacks the tensor ${name}`);
  if (t.dims.length !== shape.length || t.dims.some((d, i) => d !== shape[i])) {
    throw new ModelFormatError(`${file.source}: tensor ${t.name} has dims [${t.dims.join(', ')}] but the config implies [${shape.join(', ')}]`);
  }
  return t;
}

function vectorLength(c: LlamaConfig, name: LayerVectorName): number {
  switch (name) {
    case 'rmsAtt':
    case 'rmsFfn':
      return c.dim;
    case 'bq':
      return qDim(c);
    case 'bk':
    case 'bv':
      return kvDim(c);
    default:
      return headSize(c);
  }
}

const NATIVE_TYPES: ReadonlySet<number> = new Set([GGML_TYPE.Q8_0, GGML_TYPE.Q4_0, GGML_TYPE.Q4_K, GGML_TYPE.Q5_K, GGML_TYPE.Q6_K]);

/**
 * One matrix in the frozen format `mode`: the file's blocks unchanged where they already are that
 * format (Q8_0 for int8; Q4_0 for int4; any quantized type for native), else decoded to float32
 * and (for int8 / int4) quantized again — the conversions that round twice.
 */
function holdMatrix(file: GgufFile, info: GgufTensorInfo, mode: QuantMode): QuantizedArray | Float32Array {
  const keep = (mode === 'int8' && info.type === GGML_TYPE.Q8_0) || (mode === 'int4' && info.type === GGML_TYPE.Q4_0) || (mode === 'native' && NATIVE_TYPES.has(info.type));
  if (keep) return ggufTensorQuantized(file, info);
  const f32 = ggufTensorF32(file, info);
  return mode === 'int8' || mode === 'int4' ? quantize(f32, mode) : f32;
}

/** Options of {@link loadGgufBase}. */
export interface GgufLoadOptions {
  /** Format of the output head and embedding (default: int8 for int4 bases, else the base's mode). */
  readonly headQuant?: QuantMode;
}

function hashFile(file: GgufFile): string {
  return file.fd === undefined ? createHash('sha256').update(file.bytes).digest('hex') : sha256OfFd(file.fd);
}

/**
 * Read a GGUF model's weights tensor by tensor into `mode`: each matrix is converted as it is
 * read, so besides the result only one tensor is ever decoded at a time (`none` holds all in
 * float32). Returns the loaded base (quantized matrices as float32 placeholders) and the
 * quantized matrices for FrozenBase.
 */
export function readGgufWeights(file: GgufFile, mode: QuantMode, headMode: QuantMode = mode): { loaded: LoadedBase; quantized: Map<string, QuantizedArray> } {
  const config = ggufConfig(file);
  const tensors = tensorMap(file);
  const quantized = new Map<string, QuantizedArray>();
  const matrix = (key: string, info: GgufTensorInfo, m: QuantMode): Float32Array => {
    const held = holdMatrix(file, info, m);
    if (held instanceof Float32Array) return held;
    quantized.set(key, held);
    return new Float32Array(0); // a distinct placeholder: FrozenBase tells a shared head by identity
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const lw: Record<string, Float32Array> = {};
    for (const name of layerVectors(config)) lw[name] = ggufTensorF32(file, expectInfo(file, tensors, ggufVectorName(l, name), [vectorLength(config, name)]));
    for (const name of MATRIX_NAMES) {
      const [out, inp] = matrixShape(config, name);
      lw[name] = matrix(`${l}.${name}`, expectInfo(file, tensors, ggufMatrixName(l, name as MatrixName), [inp, out]), mode);
    }
    layers.push(lw as unknown as LayerWeights);
  }
  const V = config.vocabSize;
  const rmsFinal = ggufTensorF32(file, expectInfo(file, tensors, `${GGUF_NAMES.rmsFinal}.weight`, [config.dim]));
  const embInfo = expectInfo(file, tensors, `${GGUF_NAMES.tokenEmbedding}.weight`, [config.dim, V]);
  let tokenEmbedding: Float32Array;
  let classifier: Float32Array;
  if (config.sharedClassifier) {
    tokenEmbedding = classifier = matrix('classifier', embInfo, headMode);
  } else {
    classifier = matrix('classifier', expectInfo(file, tensors, `${GGUF_NAMES.classifier}.weight`, [config.dim, V]), headMode);
    tokenEmbedding = matrix('embedding', embInfo, headMode);
  }
  return { loaded: { weights: { config, tokenEmbedding, layers, rmsFinal, classifier }, sha256: hashFile(file), source: file.source }, quantized };
}

/** True when every matrix of a GGUF file is stored as floats (F32, F16, BF16): int4 can then use GPTQ. */
export function ggufIsFloat(path: string): boolean {
  const file = openGgufFile(path);
  try {
    return file.tensors.every((t) => t.type === GGML_TYPE.F32 || t.type === GGML_TYPE.F16 || t.type === GGML_TYPE.BF16);
  } finally {
    closeGgufFile(file);
  }
}

/** Open a GGUF file as a FrozenBase at `quant`, streaming its tensors (see {@link readGgufWeights}). */
export function loadGgufBase(path: string, quant: QuantMode, options: GgufLoadOptions = {}): FrozenBase {
  if (!QUANT_MODES.includes(quant)) throw new RangeError(`loadGgufBase: quant must be one of ${QUANT_MODES.join(', ')}, got "${quant}"`);
  const headQuant = options.headQuant ?? defaultHeadQuant(quant);
  if (!QUANT_MODES.includes(headQuant)) throw new RangeError(`loadGgufBase: headQuant must be one of ${QUANT_MODES.join(', ')}, got "${headQuant}"`);
  const file = openGgufFile(path);
  try {
    const { loaded, quantized } = readGgufWeights(file, quant, headQuant);
    return new FrozenBase(loaded, quant, { headQuant, quantized });
  } finally {
    closeGgufFile(file);
  }
}

/**
 * Convert GGUF bytes (or a parsed file) to a float32 {@link LoadedBase} (every tensor decoded).
 * `output` shares the embedding array when the file has no `output.weight`.
 */
export function ggufToBase(bytes: Uint8Array | GgufFile, source = '<buffer>'): LoadedBase {
  const file = bytes instanceof Uint8Array ? parseGguf(bytes, source) : bytes;
  return readGgufWeights(file, 'none').loaded;
}

/** Read a GGUF file and convert its model to a float32 {@link LoadedBase}. */
export function readGgufBase(path: string): LoadedBase {
  const file = openGgufFile(path);
  try {
    return readGgufWeights(file, 'none').loaded;
  } finally {
    closeGgufFile(file);
  }
}
