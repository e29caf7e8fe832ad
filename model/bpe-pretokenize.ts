/**
 * Pre-tokenizer split rules of byte-level BPE models (Qwen2, Llama 3, SmolLM, GPT-2), as the
 * regexes published in their tokenizer.json, rewritten for JS (`u` flag; the `(?i:...)`
 * contraction group spelled out with character classes).
 */

const CONTRACTIONS_CI = "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])";

/** Qwen2's Split regex (digits one by one). */
export const QWEN2_PATTERN =
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
/** Llama 3's Split regex (digit runs of up to 3). */
export const LLAMA3_PATTERN =
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
/** GPT-2's ByteLevel regex (used after a per-digit split by SmolLM). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Known GGUF `tokenizer.ggml.pre` values. */
export const KNOWN_PRE = ['qwen2', 'llama-bpe', 'smollm', 'gpt2'] as const;
/** A known pre-tokenizer name. */
export type PreName = (typeof KNOWN_PRE)[number];

/** A pre-tokenizer: text → list of words (pieces of the text, in order, covering it). */
export type PreTokenizer = (text: string) => string[];

function regexSplitter(pattern: string): PreTokenizer {
  const re = new RegExp(pattern, 'gu');
  return (text) => {
    const out: string[] = [];
    for (const m of text.matchAll(re)) if (m[0].length > 0) out.push(m[0]);
    return out;
  };
}

/** Builds the pre-tokenizer for a GGUF `pre` name; an unknown name throws RangeError. */
export function preTokenizerFor(pre: string): PreTokenizer {
  switch (pre) {
    case 'qwen2': return regexSplitter(QWEN2_PATTERN);
    case 'llama-bpe': case 'llama3': return regexSplitter(LLAMA3_PATTERN);
    case 'gpt2': return regexSplitter(GPT2_PATTERN);
    case 'smollm': {
      const gpt2 = regexSplitter(GPT2_PATTERN);
      return (text) => text.split(/(\p{N})/u).filter((p) => p.length > 0).flatMap(gpt2);
    }
    default:
      throw new RangeError(`preTokenizerFor: pre "${pre}" is not known; known ones are ${KNOWN_PRE.join(', ')}`);
  }
}

/** Recognises a tokenizer.json pre_tokenizer (Qwen2 / Llama 3 Split regex, or SmolLM Digits+ByteLevel) and names it. */
export function preNameFromTokenizerJson(preTok: unknown): PreName {
  type Step = { type?: string; pattern?: { Regex?: string }; individual_digits?: boolean; pretokenizers?: Step[] };
  const p = preTok as Step | null;
  const list: Step[] = p?.type === 'Sequence' ? p.pretokenizers ?? [] : p ? [p] : [];
  const split = list.find((x) => x.type === 'Split');
  const rx = split?.pattern?.Regex;
  if (rx !== undefined) {
    if (rx.includes('\\p{N}{1,3}')) return 'llama-bpe';
    if (rx.includes('\\p{N}|')) return 'qwen2';
  }
  if (list.some((x) => x.type === 'Digits' && x.individual_digits)) return 'smollm';
  if (list.length === 1 && list[0]!.type === 'ByteLevel') return 'gpt2';
  throw new RangeError('BpeTokenizer.fromTokenizerJson: json.pre_tokenizer is not one of the known Qwen2, Llama 3, SmolLM or GPT-2 forms');
}
