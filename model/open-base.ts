/**
 * Opening a base model file whatever its format (llama2.c checkpoint or GGUF, told apart by the
 * GGUF magic): the frozen base with its tokenizer. Its identity without loading weights is
 * base-info.ts.
 */
import { baseFormat, type BaseFormat } from './base-info.js';
import { createBase, type CreateBaseOptions } from './calibrate.js';
import { ModelFormatError } from './checkpoint.js';
import type { FrozenBase } from './frozen-base.js';
import { closeGgufFile, ggufTokenizer, openGgufFile } from './gguf.js';
import { ggufIsFloat, loadGgufBase, readGgufBase } from './gguf-base.js';
import { loadBase } from './load-base.js';
import type { QuantMode } from './quant.js';
import { Tokenizer } from './tokenizer.js';

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
    base = ggufIsFloat(path) && quant === 'int4' && !options.uncalibrated ? createBase(readGgufBase(path), quant, options) : loadGgufBase(path, quant, options);
    if (options.tokenizerPath) tokenizer = Tokenizer.fromFile(options.tokenizerPath, base.config.vocabSize);
    else {
      const file = openGgufFile(path);
      try {
        tokenizer = ggufTokenizer(file);
      } catch (e) {
        base.dispose();
        throw e;
      } finally {
        closeGgufFile(file);
      }
    }
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
