/**
 * Opening a base model file whatever its format (llama2.c checkpoint or GGUF, told apart by the
 * GGUF magic): its identity without loading weights, or the frozen base with its tokenizer.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { createBase, type CreateBaseOptions } from './calibrate.js';
import { CHECKPOINT_DATA_OFFSET, checkpointLayout, ModelFormatError } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import type { FrozenBase } from './frozen-base.js';
import { ggufToBase, ggufTokenizer, parseGguf } from './gguf.js';
import { loadBase } from './load-base.js';
import type { QuantMode } from './quant.js';
import { Tokenizer } from './tokenizer.js';

/** A base file's format. */
export type BaseFormat = 'llama2c' | 'gguf';

/** What identifies a base file. */
export interface BaseInfo {
  readonly format: BaseFormat;
  readonly config: LlamaConfig;
  /** Hex SHA-256 of the file: the base's identity. */
  readonly sha256: string;
  readonly sizeBytes: number;
}

function openOrThrow(path: string): number {
  if (typeof path !== 'string' || path === '') throw new TypeError('base path must be a non-empty string');
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read base model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** 'gguf' if the file starts with the GGUF magic, else 'llama2c'. */
export function baseFormat(path: string): BaseFormat {
  const fd = openOrThrow(path);
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'GGUF' ? 'gguf' : 'llama2c';
  } finally {
    closeSync(fd);
  }
}

/** Format, architecture, SHA-256 and size of a base file, streaming a llama2.c checkpoint through the hash. */
export function readBaseInfo(path: string): BaseInfo {
  const format = baseFormat(path);
  if (format === 'gguf') {
    const bytes = readFileSync(path);
    const loaded = ggufToBase(bytes, path);
    return { format, config: loaded.weights.config, sha256: loaded.sha256, sizeBytes: bytes.length };
  }
  const fd = openOrThrow(path);
  try {
    const size = fstatSync(fd).size;
    const header = new Uint8Array(CHECKPOINT_DATA_OFFSET);
    readSync(fd, header, 0, header.length, 0);
    const { config } = checkpointLayout(header, size, path);
    const hash = createHash('sha256');
    const buf = new Uint8Array(1 << 20);
    for (let pos = 0; pos < size; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return { format, config, sha256: hash.digest('hex'), sizeBytes: size };
  } finally {
    closeSync(fd);
  }
}

/** A frozen base with its tokenizer. */
export interface OpenedBase {
  readonly base: FrozenBase;
  readonly tokenizer: Tokenizer;
  readonly format: BaseFormat;
}

/**
 * Load a base file at a quantization mode with its tokenizer: a GGUF file carries its own (unless
 * `tokenizerPath` is given); a llama2.c checkpoint needs `tokenizerPath`. Throws if the
 * tokenizer's vocabulary does not match the base's.
 */
export function openBase(path: string, quant: QuantMode, options: CreateBaseOptions & { readonly tokenizerPath?: string } = {}): OpenedBase {
  const format = baseFormat(path);
  let base: FrozenBase;
  let tokenizer: Tokenizer;
  if (format === 'gguf') {
    const file = parseGguf(readFileSync(path), path);
    base = createBase(ggufToBase(file, path), quant, options);
    tokenizer = options.tokenizerPath ? Tokenizer.fromFile(options.tokenizerPath, base.config.vocabSize) : ggufTokenizer(file);
  } else {
    if (!options.tokenizerPath) throw new TypeError(`openBase: ${path} is a llama2.c checkpoint, which needs options.tokenizerPath`);
    base = loadBase(path, quant, options);
    tokenizer = Tokenizer.fromFile(options.tokenizerPath, base.config.vocabSize);
  }
  if (tokenizer.vocabSize !== base.config.vocabSize) {
    base.dispose();
    throw new ModelFormatError(`the tokenizer has ${tokenizer.vocabSize} tokens but the base model's vocabulary is ${base.config.vocabSize}; use the tokenizer made for this base`);
  }
  return { base, tokenizer, format };
}
