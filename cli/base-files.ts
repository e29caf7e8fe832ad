/**
 * Finding a command's base and tokenizer from `--base` / `--tokenizer`, and reading what needs
 * no weights — the tokenizer, the chat template — without TensorFlow.js, so `fedtune inspect`
 * and `fedtune tokenize` stay fast on big files. A base is a llama2.c checkpoint (with a
 * tok*.bin), a GGUF file or a Hugging Face checkpoint directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseFormat, type BaseFormat } from '../model/base-info.js';
import { ModelFormatError, readCheckpointConfig } from '../model/checkpoint.js';
import { closeGgufFile, openGgufFile, type GgufFile } from '../model/gguf.js';
import { ggufConfig } from '../model/gguf-config.js';
import { ggufTextTokenizer } from '../model/gguf-tokenizer.js';
import { readHfLayout } from '../model/hf-files.js';
import { hfTokenizer } from '../model/hf-tokenizer.js';
import { defaultBasePath, defaultTokenizerPath } from '../model/paths.js';
import type { TextTokenizer } from '../model/text-tokenizer.js';
import { Tokenizer } from '../model/tokenizer.js';
import { CliError } from './args.js';

/** Where a command's base and tokenizer are. */
export interface BaseFiles {
  readonly basePath: string;
  readonly format: BaseFormat;
  /** A tok*.bin: for a llama2.c base always (given or the default), for a GGUF base only when given; never for a directory. */
  readonly tokenizerPath?: string;
}

/** Runs `fn`, turning a ModelFormatError (a bad model file, already one sentence naming it) into a CliError. */
export function formatErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ModelFormatError) throw new CliError(e.message);
    throw e;
  }
}

/**
 * The base of `--base` (default: the shared stories260K) and its tokenizer: `--tokenizer` when
 * given, else the default tok512.bin for a llama2.c checkpoint; a GGUF file and a Hugging Face
 * directory carry their own. Throws CliError for a missing path or a --tokenizer with a directory.
 */
export function baseFiles(v: Record<string, string | boolean | undefined>): BaseFiles {
  const basePath = typeof v.base === 'string' && v.base !== '' ? v.base : defaultBasePath();
  if (!existsSync(basePath)) throw new CliError(`--base file or directory ${basePath} does not exist (give a GGUF file, a llama2.c checkpoint or a Hugging Face checkpoint directory)`);
  const format = formatErrors(() => baseFormat(basePath));
  const given = typeof v.tokenizer === 'string' && v.tokenizer !== '' ? v.tokenizer : undefined;
  if (format === 'hf' && given !== undefined) throw new CliError(`--tokenizer does not apply to the Hugging Face directory ${basePath}, which holds its own tokenizer.json`);
  const tokenizerPath = given ?? (format === 'llama2c' ? defaultTokenizerPath() : undefined);
  if (tokenizerPath !== undefined && !existsSync(tokenizerPath)) {
    throw new CliError(given !== undefined ? `--tokenizer file ${tokenizerPath} does not exist` : `the llama2.c checkpoint ${basePath} needs a tokenizer: give --tokenizer (the default ${tokenizerPath} does not exist)`);
  }
  return { basePath, format, tokenizerPath };
}


function checkVocab(tokenizer: TextTokenizer, vocabSize: number, where: string): TextTokenizer {
  if (tokenizer.vocabSize !== vocabSize) throw new ModelFormatError(`the tokenizer has ${tokenizer.vocabSize} tokens but the base ${where} has a vocabulary of ${vocabSize}; use the tokenizer made for this base`);
  return tokenizer;
}

/** A GGUF base's tokenizer from an open file: its own, or the tok*.bin given. */
export function ggufFileTokenizer(file: GgufFile, tokenizerPath: string | undefined): TextTokenizer {
  const V = ggufConfig(file).vocabSize;
  return checkVocab(tokenizerPath !== undefined ? Tokenizer.fromFile(tokenizerPath, V) : ggufTextTokenizer(file), V, file.source);
}

/** The base's tokenizer, read without its weights or TensorFlow.js; a bad file throws CliError naming it. */
export function openTokenizer(files: BaseFiles): TextTokenizer {
  return formatErrors(() => {
    const { basePath, format, tokenizerPath } = files;
    if (format === 'hf') return checkVocab(hfTokenizer(basePath), readHfLayout(basePath).config.vocabSize, basePath);
    if (format === 'gguf') {
      const file = openGgufFile(basePath);
      try {
        return ggufFileTokenizer(file, tokenizerPath);
      } finally {
        closeGgufFile(file);
      }
    }
    const V = readCheckpointConfig(basePath).vocabSize;
    return checkVocab(Tokenizer.fromFile(tokenizerPath!, V), V, basePath);
  });
}

/** A tokenizer_config.json `chat_template`: a string, or the `default` of a list of named templates. */
function configTemplate(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    const t = (raw as { name?: unknown; template?: unknown }[]).find((x) => x?.name === 'default')?.template;
    return typeof t === 'string' ? t : undefined;
  }
  return undefined;
}

/**
 * The base's own Jinja chat template: GGUF `tokenizer.chat_template`, or a directory's
 * tokenizer_config.json `chat_template`; undefined when it has none (a llama2.c base never has).
 */
export function baseChatTemplate(files: BaseFiles): string | undefined {
  if (files.format === 'gguf') {
    const file = formatErrors(() => openGgufFile(files.basePath));
    try {
      const t = file.metadata.get('tokenizer.chat_template');
      return typeof t === 'string' ? t : undefined;
    } finally {
      closeGgufFile(file);
    }
  }
  if (files.format === 'hf') {
    const path = join(files.basePath, 'tokenizer_config.json');
    if (!existsSync(path)) return undefined;
    try {
      return configTemplate((JSON.parse(readFileSync(path, 'utf8')) as { chat_template?: unknown } | null)?.chat_template);
    } catch {
      throw new CliError(`${path} is not valid JSON`);
    }
  }
  return undefined;
}
