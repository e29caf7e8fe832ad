/**
 * Test helper: trains a small byte-level BPE vocabulary and writes it as a Hugging Face
 * tokenizer.json with the real Qwen2 or Llama 3 pre_tokenizer, for checking BpeTokenizer against
 * @huggingface/tokenizers.
 */
import { BYTE_TO_CHAR, bytesToUnicode, preTokenizerFor } from '../../model/index.js';

/** Qwen2's published Split regex (tokenizer.json). */
export const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Llama 3's published Split regex (tokenizer.json). */
export const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Learns `n` merges over the 256 byte symbols from `text` (greedy most-frequent pair). */
export function trainMerges(text: string, n: number): [string, string][] {
  const counts = new Map<string, number>();
  for (const w of preTokenizerFor('llama-bpe')(text)) { // runs of digits, so digit merges exist and Qwen's one-by-one split matters
    const k = bytesToUnicode(new TextEncoder().encode(w));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  let words = [...counts].map(([w, c]) => ({ parts: Array.from(w), c }));
  const merges: [string, string][] = [];
  for (let m = 0; m < n; m++) {
    const pairs = new Map<string, number>();
    for (const { parts, c } of words) for (let i = 0; i + 1 < parts.length; i++) {
      const k = parts[i] + '\u0000' + parts[i + 1];
      pairs.set(k, (pairs.get(k) ?? 0) + c);
    }
    let best = '', bc = 0;
    for (const [k, c] of pairs) if (c > bc) { best = k; bc = c; }
    if (bc < 2) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    words = words.map(({ parts, c }) => {
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) { next.push(a + b); i++; } else next.push(parts[i]!);
      }
      return { parts: next, c };
    });
  }
  return merges;
}

/** Builds a tokenizer.json object (BPE model, given pre_tokenizer regex, ByteLevel decoder, added specials). */
export function tokenizerJson(merges: [string, string][], regex: string, specials: string[]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, i) => { vocab[c] = i; });
  let id = 256;
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = id++;
  const added = specials.map((content) => ({ id: id++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ] },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(([a, b]) => [a, b]) },
  };
}
