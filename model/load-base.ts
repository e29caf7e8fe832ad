/**
 * Loading the frozen base from a file at a quantization mode, the way a device should: for
 * `int8` (and uncalibrated `int4`) the checkpoint is streamed one array at a time and each
 * matrix is quantized as it arrives, so the float32 model never sits in memory whole. `none`
 * and calibrated `int4` (GPTQ needs the float32 weights) read the whole file.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, readSync } from 'node:fs';
import { createBase, type CreateBaseOptions } from './calibrate.js';
import { assembleWeights, CHECKPOINT_DATA_OFFSET, checkpointLayout, ModelFormatError, openModelFile, readLlama2cCheckpoint } from './checkpoint.js';
import { defaultHeadQuant, FrozenBase } from './frozen-base.js';
import { quantize, QUANT_MODES, type QuantizedArray, type QuantMode } from './quant.js';
import { MATRIX_NAMES } from './weights.js';

const MATRIX_SEGMENTS = new Set<string>(MATRIX_NAMES);
const NORM_SEGMENTS = new Set(['rms_att', 'rms_ffn', 'rms_final']);

/** Load a llama2.c checkpoint as a FrozenBase at `quant`, streaming when the mode allows. */
export function loadBase(path: string, quant: QuantMode, options: CreateBaseOptions = {}): FrozenBase {
  if (quant === 'none' || quant === 'native' || (quant === 'int4' && !options.uncalibrated)) return createBase(readLlama2cCheckpoint(path), quant, options);
  if (!QUANT_MODES.includes(quant)) throw new RangeError(`loadBase: quant must be one of ${QUANT_MODES.join(', ')}, got "${quant}"`);
  const headQuant = options.headQuant ?? defaultHeadQuant(quant);
  if (headQuant === 'none' || headQuant === 'native' || !QUANT_MODES.includes(headQuant)) throw new RangeError(`loadBase: streaming a ${quant} base needs a quantized headQuant, got "${headQuant}"`);
  const fd = openModelFile(path);
  try {
    const size = fstatSync(fd).size;
    const header = new Uint8Array(CHECKPOINT_DATA_OFFSET);
    readSync(fd, header, 0, header.length, 0);
    const { config, segments } = checkpointLayout(header, size, path);
    const hash = createHash('sha256').update(header);
    let pos = CHECKPOINT_DATA_OFFSET;
    const read = (floats: number): Float32Array => {
      const a = new Float32Array(floats);
      const u = new Uint8Array(a.buffer);
      let off = 0;
      while (off < u.length) {
        const n = readSync(fd, u, off, u.length - off, pos + off);
        if (n <= 0) throw new ModelFormatError(`${path} ended early at byte ${pos + off}`);
        off += n;
      }
      pos += u.length;
      hash.update(u);
      return a;
    };
    const quantized = new Map<string, QuantizedArray>();
    const arrays = new Map<string, Float32Array[]>();
    for (const sg of segments) {
      const each = sg.floats / sg.parts;
      const parts: Float32Array[] = [];
      for (let l = 0; l < sg.parts; l++) {
        if (sg.name === 'rope') {
          for (let left = sg.floats; left > 0; left -= Math.min(left, 1 << 20)) read(Math.min(left, 1 << 20));
          break;
        }
        const a = read(each);
        if (NORM_SEGMENTS.has(sg.name)) parts.push(a);
        else {
          const key = MATRIX_SEGMENTS.has(sg.name) ? `${l}.${sg.name}` : sg.name === 'token_embedding' ? (config.sharedClassifier ? 'classifier' : 'embedding') : 'classifier';
          quantized.set(key, quantize(a, (MATRIX_SEGMENTS.has(sg.name) ? quant : headQuant) as 'int8' | 'int4'));
          parts.push(new Float32Array(0)); // a distinct placeholder: FrozenBase tells a shared head by identity
        }
      }
      arrays.set(sg.name, parts);
    }
    const weights = assembleWeights(config, arrays);
    return new FrozenBase({ weights, sha256: hash.digest('hex'), source: path }, quant, { headQuant, quantized });
  } finally {
    closeSync(fd);
  }
}
