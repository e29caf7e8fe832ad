/**
 * A Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json, as published with
 * Qwen2/2.5/3, Llama 3 and SmolLM2) as a {@link TextTokenizer}: the byte-level BPE model of
 * tokenizer.json, with BOS / EOS / add-BOS taken from tokenizer_config.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { ModelFormatError } from './checkpoint.js';
import type { TextTokenizer } from './text-tokenizer.js';

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}
/** A token named in tokenizer_config.json: its text, `{ content }`, or null. */
type NamedToken = string | { content?: string } | null | undefined;
interface TokenizerConfig {
  bos_token?: NamedToken;
  eos_token?: NamedToken;
  pad_token?: NamedToken;
  add_bos_token?: boolean;
  added_tokens_decoder?: Record<string, { content?: string; special?: boolean }>;
}
interface TokenizerJson {
  model?: { vocab?: Record<string, number> };
  added_tokens?: AddedToken[];
  post_processor?: unknown;
}

function readJson(dir: string, name: string, optional: boolean): unknown {
  const path = join(dir, name);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (optional && code === 'ENOENT') return undefined;
    throw new ModelFormatError(`cannot read ${name} in the tokenizer directory ${dir}: ${code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`${name} in the tokenizer directory ${dir} is not valid JSON: ${(e as Error).message}`);
  }
}

function tokenText(t: NamedToken): string | undefined {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof t.content === 'string') return t.content;
  return undefined;
}

/** The special token a TemplateProcessing post-processor puts before the text (Llama 3's "<|begin_of_text|>"), if any. */
function templatePrefix(pp: unknown): string | undefined {
  type Step = { type?: string; processors?: Step[]; single?: ({ SpecialToken?: { id?: string } } | { Sequence?: unknown })[] };
  const p = pp as Step | null | undefined;
  const steps = p?.type === 'Sequence' ? p.processors ?? [] : p ? [p] : [];
  const tp = steps.find((s) => s?.type === 'TemplateProcessing');
  const first = tp?.single?.[0];
  return first && 'SpecialToken' in first ? first.SpecialToken?.id : undefined;
}

/**
 * Read a Hugging Face tokenizer directory. BOS is `bos_token` (Qwen: null, so none), EOS is
 * `eos_token` (Qwen2.5 instruct "<|im_end|>", base "<|endoftext|>"); addBos is `add_bos_token`,
 * else true when tokenizer.json's post-processor template prepends a special token (Llama 3),
 * else false. Windows start at BOS, else "<|endoftext|>", else EOS. tokenizer_config.json may be
 * absent; a missing or unreadable tokenizer.json throws ModelFormatError.
 */
export function hfTokenizer(dir: string): TextTokenizer {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('hfTokenizer: dir must be a non-empty string');
  const json = readJson(dir, 'tokenizer.json', false) as TokenizerJson;
  if (json === null || typeof json !== 'object') throw new ModelFormatError(`tokenizer.json in the tokenizer directory ${dir} is not a JSON object`);
  const config = (readJson(dir, 'tokenizer_config.json', true) ?? {}) as TokenizerConfig;
  if (config === null || typeof config !== 'object') throw new ModelFormatError(`tokenizer_config.json in the tokenizer directory ${dir} is not a JSON object`);
  // added tokens the config declares but tokenizer.json lacks are added too
  const added = [...(Array.isArray(json.added_tokens) ? json.added_tokens : [])];
  for (const [k, v] of Object.entries(config.added_tokens_decoder ?? {})) {
    const id = Number(k);
    if (Number.isInteger(id) && typeof v?.content === 'string' && !added.some((a) => a.id === id)) added.push({ id, content: v.content, special: v.special ?? false });
  }
  const idOf = (text: string | undefined, what: string): number => {
    if (text === undefined) return -1;
    const id = added.find((a) => a.content === text)?.id ?? json.model?.vocab?.[text];
    if (id === undefined) throw new ModelFormatError(`tokenizer_config.json in the tokenizer directory ${dir} names ${what} "${text}", which is not in the vocabulary`);
    return id;
  };
  const prefix = templatePrefix(json.post_processor);
  const bosText = tokenText(config.bos_token) ?? (config.bos_token === undefined ? prefix : undefined);
  const bosId = idOf(bosText, 'bos_token');
  const eosText = tokenText(config.eos_token);
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : prefix !== undefined && prefix === bosText;
  // without eos_token: the end-of-text token of the vocabulary, if any
  const eosId = eosText !== undefined ? idOf(eosText, 'eos_token') : added.find((a) => a.content === '<|end_of_text|>' || a.content === '<|endoftext|>')?.id ?? -1;
  idOf(tokenText(config.pad_token), 'pad_token'); // checked only: padding plays no part in encoding or generation
  try {
    return BpeTokenizer.fromTokenizerJson({ ...json, added_tokens: added }, { bosId, eosId, addBos });
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) throw new ModelFormatError(`tokenizer.json in the tokenizer directory ${dir} is not a usable byte-level BPE tokenizer: ${e.message}`);
    throw e;
  }
}
