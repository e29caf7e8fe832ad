/**
 * Opening a base whatever its format — a llama2.c checkpoint, a GGUF file (told apart by the
 * GGUF magic) or a Hugging Face checkpoint directory: the frozen base with its tokenizer. Its
 * identity without loading weights is base-info.ts.
 */
import { baseFormat, type BaseFormat } from './base-info.js';
import { createBase, type CreateBaseOptions } from './calibrate.js';
import { ModelFormatError, readCheckpointConfig } from './checkpoint.js';
import type { FrozenBase } from './frozen-base.js';
import { closeGgufFile, openGgufFile } from './gguf.js';
import { ggufConfig } from './gguf-config.js';
import { ggufIsFloat, loadGgufBase, readGgufBase } from './gguf-base.js';
import { ggufTextTokenizer } from './gguf-tokenizer.js';
import { loadHfBase } from './hf-base.js';
import { readHfLayout } from './hf-files.js';
import { hfTokenizer } from './hf-tokenizer.js';
import { loadBase } from './load-base.js';
import type { QuantMode } from './quant.js';
import type { TextTokenizer } from './text-tokenizer.js';
import { Tokenizer } from './tokenizer.js';

/** A frozen base with its tokenizer. */
export interface OpenedBase {
  readonly base: FrozenBase;
  readonly tokenizer: TextTokenizer;
  readonly format: BaseFormat;
}


function checkVocab(tokenizer: TextTokenizer, vocabSize: number): void {
  if (tokenizer.vocabSize !== vocabSize) {
    throw new ModelFormatError(`the tokenizer has ${tokenizer.vocabSize} tokens but the base model's vocabulary is ${vocabSize}; use the tokenizer made for this base`);
  }
}

/**
 * Load a base file at a quantization mode with its tokenizer: a GGUF file carries its own (unless
 * `tokenizerPath` is given, a llama2.c tok*.bin); a llama2.c checkpoint needs `tokenizerPath`.
 * The tokenizer is read first, since int4 calibration starts its windows at its `startId`.
 * Throws if the tokenizer's vocabulary does not match the base's.
 */
export function openBase(path: string, quant: QuantMode, options: Omit<CreateBaseOptions, 'tokenizer'> & { readonly tokenizerPath?: string } = {}): OpenedBase {
  const format = baseFormat(path);
  let tokenizer: TextTokenizer;
  let base: FrozenBase;
  if (format === 'gguf') {
    const file = openGgufFile(path);
    try {
      const V = ggufConfig(file).vocabSize;
      tokenizer = options.tokenizerPath ? Tokenizer.fromFile(options.tokenizerPath, V) : ggufTextTokenizer(file);
      checkVocab(tokenizer, V);
    } finally {
      closeGgufFile(file);
    }
    // int4 of a float file is GPTQ-calibrated as for llama2.c; of a quantized file, streamed
    base = ggufIsFloat(path) && quant === 'int4' && !options.uncalibrated ? createBase(readGgufBase(path), quant, { ...options, tokenizer }) : loadGgufBase(path, quant, options);
  } else if (format === 'hf') {
    tokenizer = hfTokenizer(path);
    const V = readHfLayout(path).config.vocabSize;
    checkVocab(tokenizer, V);
    base = loadHfBase(path, quant, { ...options, tokenizer });
  } else {
    if (!options.tokenizerPath) throw new TypeError(`openBase: ${path} is a llama2.c checkpoint, which needs options.tokenizerPath`);
    const V = readCheckpointConfig(path).vocabSize;
    tokenizer = Tokenizer.fromFile(options.tokenizerPath, V);
    checkVocab(tokenizer, V);
    base = loadBase(path, quant, { ...options, tokenizer });
  }
  return { base, tokenizer, format };
}
