/**
 * A base's own chat format, read from the base itself: the Jinja chat template a GGUF file
 * carries (`tokenizer.chat_template`) or a Hugging Face directory's tokenizer_config.json
 * (`chat_template`), else the tokenizer's special tokens. What a device renders chat data with.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseFormat } from './base-info.js';
import { detectChatStyle, type ChatStyle } from './chat-format.js';
import { ModelFormatError } from './checkpoint.js';
import { closeGgufFile, openGgufFile } from './gguf.js';
import type { TextTokenizer } from './text-tokenizer.js';

/**
 * The chat template stored with a base: a GGUF's `tokenizer.chat_template`, a Hugging Face
 * directory's tokenizer_config.json `chat_template` (the one named "default" when it lists
 * several); undefined for a llama2.c checkpoint or when there is none. A template of the wrong
 * type throws ModelFormatError.
 */
export function baseChatTemplate(path: string): string | undefined {
  if (typeof path !== 'string' || path === '') throw new TypeError('baseChatTemplate: path must be a non-empty string');
  const format = baseFormat(path);
  if (format === 'llama2c') return undefined;
  if (format === 'gguf') {
    const file = openGgufFile(path);
    try {
      const t = file.metadata.get('tokenizer.chat_template');
      if (t !== undefined && typeof t !== 'string') throw new ModelFormatError(`${path} has a tokenizer.chat_template that is not a string`);
      return t;
    } finally {
      closeGgufFile(file);
    }
  }
  const cfgPath = join(path, 'tokenizer_config.json');
  if (!existsSync(cfgPath)) return undefined;
  let cfg: unknown;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new ModelFormatError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  const t = (cfg as { chat_template?: unknown } | null)?.chat_template;
  if (t === undefined || t === null) return undefined;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = (t as { name?: unknown; template?: unknown }[]).find((x) => x?.name === 'default')?.template;
    if (typeof named === 'string') return named;
  }
  throw new ModelFormatError(`${cfgPath} has a chat_template that is neither a string nor a list holding a "default" template`);
}

/**
 * The chat style of a base opened from `path` with `tokenizer`: from its stored chat template
 * ({@link baseChatTemplate}), else from the tokenizer's special tokens; undefined when neither
 * is ChatML or Llama 3 (see detectChatStyle).
 */
export function baseChatStyle(path: string, tokenizer: Pick<TextTokenizer, 'specialTokens'>): ChatStyle | undefined {
  if (typeof tokenizer?.specialTokens !== 'function') throw new TypeError('baseChatStyle: tokenizer must be a TextTokenizer');
  return detectChatStyle(baseChatTemplate(path), tokenizer.specialTokens());
}
