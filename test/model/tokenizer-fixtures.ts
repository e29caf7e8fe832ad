/**
 * Test helper: tiny byte-level BPE tokenizers (trained with bpe-train.ts) in the three forms a
 * partner base ships them — a tokenizer.json for @huggingface/tokenizers (the oracle), the
 * same vocabulary as GGUF `tokenizer.ggml.*` metadata, and awkward strings to compare on.
 */
import { encodeGguf, parseGguf, type GgufFile, type GgufMetadataEntry } from '../../model/index.js';
import { corpus } from '../helpers.js';
import { LLAMA3_REGEX, QWEN2_REGEX, tokenizerJson, trainMerges } from './bpe-train.js';

/** Strings where pre-tokenizers, merges and special-token matching disagree easily. */
export const AWKWARD = [
  '', 'hello', ' hello', '   leading', 'a  b   c    d', 'trailing   ', '12345678901', 'x1y22z333 4444', '!!!...???', '--==**',
  'a\nb\n\n\nc', '\t\ttabs\t', ' \n \n', '\r\nwin\r\n', "I'M don't we'LL they'Re", 'café résumé naïve', 'Ünïcödé',
  '日本語のテキスト', '中文测试', '👩‍👩‍👧‍👦 family', '🇫🇷🇩🇪', '😀é中', 'a<|im_start|>user\nhi<|im_end|>', '<|endoftext|><|endoftext|>',
  '<|begin_of_text|>x<|eot_id|>', ' <|end_of_text|> ',
];

const SAMPLES = ' Ünïcödé café naïve 日本語のテキスト 中文测试 👩‍👩‍👧 🇫🇷 1234567 2024 123 12 99 100 don\'t I\'M';
let merges: [string, string][] | undefined;
/** 300 merges learnt from a little Shakespeare and multilingual samples (cached). */
export function tinyMerges(): [string, string][] {
  merges ??= trainMerges(corpus('tinyshakespeare.txt').slice(0, 20_000) + SAMPLES.repeat(20), 300);
  return merges;
}

/** The pre-tokenizer kinds the fixtures cover, as GGUF `tokenizer.ggml.pre` names. */
export type FixturePre = 'qwen2' | 'llama-bpe' | 'smollm';

/** A tokenizer.json object for `pre` with the given added special tokens. */
export function fixtureJson(pre: FixturePre, specials: string[]): Record<string, unknown> & { added_tokens: { id: number; content: string }[] } {
  const j = tokenizerJson(tinyMerges(), pre === 'llama-bpe' ? LLAMA3_REGEX : QWEN2_REGEX, specials) as Record<string, unknown> & { added_tokens: { id: number; content: string }[] };
  if (pre === 'smollm') {
    // SmolLM's published form: digits split one by one, then GPT-2's ByteLevel regex
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [
      { type: 'Digits', individual_digits: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    ] };
  }
  return j;
}

/** The id of an added token of a fixture. */
export function addedId(json: { added_tokens: { id: number; content: string }[] }, text: string): number {
  const a = json.added_tokens.find((t) => t.content === text);
  if (!a) throw new Error(`fixture has no added token ${text}`);
  return a.id;
}

/** Options of {@link fixtureGguf}: the GGUF keys to write besides tokens / merges / token_type / pre. */
export interface GgufTokenizerKeys {
  readonly bos?: string;
  readonly eos?: string;
  readonly eot?: string;
  readonly pad?: string;
  readonly addBos?: boolean;
  readonly pre?: string;
}

/** The fixture's vocabulary written as GGUF v3 metadata (no tensors) and parsed back. */
export function fixtureGguf(json: ReturnType<typeof fixtureJson>, keys: GgufTokenizerKeys): GgufFile {
  const model = json.model as { vocab: Record<string, number>; merges: [string, string][] };
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(model.vocab)) tokens[id] = t;
  const types: number[] = tokens.map(() => 1); // normal
  for (const a of json.added_tokens) {
    tokens[a.id] = a.content;
    types[a.id] = 3; // control
  }
  const id = (t: string): number => addedId(json, t);
  const md: GgufMetadataEntry[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: keys.pre ?? 'qwen2' },
    { key: 'tokenizer.ggml.tokens', type: 'array', elementType: ['string'], value: tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', elementType: ['i32'], value: types },
    { key: 'tokenizer.ggml.merges', type: 'array', elementType: ['string'], value: model.merges.map(([a, b]) => `${a} ${b}`) },
  ];
  if (keys.bos) md.push({ key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: id(keys.bos) });
  if (keys.eos) md.push({ key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: id(keys.eos) });
  if (keys.eot) md.push({ key: 'tokenizer.ggml.eot_token_id', type: 'u32', value: id(keys.eot) });
  if (keys.pad) md.push({ key: 'tokenizer.ggml.padding_token_id', type: 'u32', value: id(keys.pad) });
  if (keys.addBos !== undefined) md.push({ key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: keys.addBos });
  return parseGguf(encodeGguf({ metadata: md, tensors: [] }), 'fixture.gguf');
}

/** True when `bytes` are not valid UTF-8 on their own. */
export function invalidUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return false;
  } catch {
    return true;
  }
}
