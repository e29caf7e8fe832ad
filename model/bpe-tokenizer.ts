/**
 * Byte-level BPE tokenizer (GPT-2 family: Qwen2, Llama 3, SmolLM): special tokens matched whole,
 * a pre-tokenizer split, GPT-2 byte-to-unicode mapping, merges applied by rank per word (cached).
 */
import { BYTE_TO_CHAR, bytesToUnicode, CHAR_TO_BYTE } from './byte-unicode.js';
import { mergeByRank } from './bpe-merge.js';
import { preNameFromTokenizerJson, preTokenizerFor, type PreTokenizer } from './bpe-pretokenize.js';
import type { EncodeOptions, SpecialToken, TextTokenizer } from './text-tokenizer.js';

/** Options of BpeTokenizer.encode (the {@link EncodeOptions} of every tokenizer). */
export type BpeEncodeOptions = EncodeOptions;

/**
 * Texts of tokens that end a generation when the vocabulary has them (ChatML's end of turn,
 * Llama 3's end of turn and end of text, GPT-2 / Qwen's document separator).
 */
export const STOP_TOKEN_TEXTS: readonly string[] = ['<|im_end|>', '<|eot_id|>', '<|end_of_text|>', '<|endoftext|>'];
/** Text of the document separator that starts windows when a vocabulary has no BOS (GPT-2, Qwen). */
export const DOCUMENT_SEPARATOR = '<|endoftext|>';

/** The roles of special tokens; anything left out takes the default documented per field. */
export interface BpeRoles {
  /** BOS id or −1 (default −1). */
  readonly bosId?: number;
  /** EOS id or −1 (default −1). */
  readonly eosId?: number;
  /** Prepend BOS by default (default false). */
  readonly addBos?: boolean;
  /** Default: BOS if any, else "<|endoftext|>" if in the vocabulary, else EOS. */
  readonly startId?: number;
  /** Extra stop ids (end-of-turn, end-of-message) besides EOS and the {@link STOP_TOKEN_TEXTS} present. */
  readonly stopIds?: readonly number[];
}

/** Input of BpeTokenizer.fromGgufMetadata (GGUF tokenizer.ggml.* keys). */
export interface BpeGgufMetadata {
  tokens: readonly string[];
  merges: readonly string[];
  /** GGUF token types (3 = control, 4 = user-defined are matched whole). */
  tokenTypes?: readonly number[];
  pre: string;
  bosId?: number;
  eosId?: number;
  addBos?: boolean;
  /** Default: BOS if any, else "<|endoftext|>" if present, else EOS. */
  startId?: number;
  /** Extra stop ids (e.g. eot / eom) besides EOS and the {@link STOP_TOKEN_TEXTS} present. */
  stopIds?: readonly number[];
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });
function escapeRe(s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

/** A byte-level BPE tokenizer. */
export class BpeTokenizer implements TextTokenizer {
  readonly kind = 'bpe' as const;
  private readonly vocab = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly specialRe: RegExp | null;
  private readonly specialIds = new Set<number>();
  private readonly cache = new Map<string, number[]>();
  private readonly pretok: PreTokenizer;
  /** BOS id or -1. */
  readonly bosId: number;
  /** EOS id or -1. */
  readonly eosId: number;
  /** Whether encode prepends BOS by default. */
  readonly addBos: boolean;
  /** The token that starts windows and samples. */
  readonly startId: number;
  private readonly stops = new Set<number>();

  private constructor(
    private readonly tokens: readonly string[], merges: readonly (readonly [string, string])[],
    specials: readonly string[], pre: string, roles: BpeRoles,
  ) {
    tokens.forEach((t, i) => { if (t !== undefined && !this.vocab.has(t)) this.vocab.set(t, i); });
    merges.forEach(([a, b], r) => {
      // as Hugging Face tokenizers does on load: a merge whose parts or result are not tokens would fail mid-encode
      const missing = [a, b, a + b].find((t) => !this.vocab.has(t));
      if (missing !== undefined) throw new RangeError(`BpeTokenizer: merge ${r} "${a} ${b}" needs the token ${JSON.stringify(missing)}, which is not in the vocabulary`);
      const k = `${a} ${b}`;
      if (!this.ranks.has(k)) this.ranks.set(k, r);
    });
    this.pretok = preTokenizerFor(pre);
    const sp = [...new Set(specials)].filter((s) => s.length > 0).sort((x, y) => y.length - x.length);
    for (const s of sp) this.specialIds.add(this.vocab.get(s)!);
    this.specialRe = sp.length ? new RegExp(sp.map(escapeRe).join('|'), 'g') : null;
    const id = (what: string, v: number | undefined): number => {
      const x = v ?? -1;
      if (!Number.isInteger(x) || x < -1 || x >= tokens.length) throw new RangeError(`BpeTokenizer: ${what} ${x} is outside the vocabulary [0, ${tokens.length})`);
      return x;
    };
    this.bosId = id('bosId', roles.bosId); this.eosId = id('eosId', roles.eosId); this.addBos = roles.addBos ?? false;
    if (this.addBos && this.bosId < 0) throw new RangeError('BpeTokenizer: addBos is set but the vocabulary has no BOS token');
    const sep = this.vocab.get(DOCUMENT_SEPARATOR);
    this.startId = id('startId', roles.startId ?? (this.bosId >= 0 ? this.bosId : sep ?? this.eosId));
    if (this.startId < 0) throw new RangeError('BpeTokenizer: the vocabulary has no BOS, "<|endoftext|>" or EOS token to start windows with');
    if (this.eosId >= 0) this.stops.add(this.eosId);
    for (const s of roles.stopIds ?? []) if (s >= 0) this.stops.add(id('stop id', s));
    for (const t of STOP_TOKEN_TEXTS) { const i = this.vocab.get(t); if (i !== undefined) this.stops.add(i); }
  }

  /** True for EOS, the extra stop ids and the {@link STOP_TOKEN_TEXTS} tokens. */
  isStop(id: number): boolean { return this.stops.has(id); }

  /** Tokens matched whole (control and user-defined / added tokens), by id. */
  specialTokens(): readonly SpecialToken[] {
    return [...this.specialIds].sort((a, b) => a - b).map((id) => ({ id, text: this.tokens[id]! }));
  }

  /** Number of token ids. */
  get vocabSize(): number { return this.tokens.length; }

  /**
   * Builds from a Hugging Face tokenizer.json (object or JSON text). Without `roles`, BOS is
   * "<|begin_of_text|>" and EOS "<|end_of_text|>" or "<|endoftext|>" when added, and addBos false.
   */
  static fromTokenizerJson(json: object | string, roles?: BpeRoles): BpeTokenizer {
    const j = (typeof json === 'string' ? JSON.parse(json) : json) as {
      model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
      added_tokens?: { id: number; content: string; special?: boolean }[]; pre_tokenizer?: unknown;
    };
    if (j?.model?.type !== 'BPE' || !j.model.vocab || !j.model.merges) {
      throw new TypeError('BpeTokenizer.fromTokenizerJson: json.model must be a BPE model with vocab and merges');
    }
    const tokens: string[] = [];
    for (const [t, id] of Object.entries(j.model.vocab)) tokens[id] = t;
    const added = j.added_tokens ?? [];
    for (const a of added) tokens[a.id] = a.content;
    const merges = j.model.merges.map((m) => (typeof m === 'string' ? splitMerge(m, 'fromTokenizerJson') : m));
    const pre = preNameFromTokenizerJson(j.pre_tokenizer);
    const find = (s: string): number => added.find((a) => a.content === s)?.id ?? -1;
    const bos = find('<|begin_of_text|>');
    const eos = [find('<|end_of_text|>'), find('<|endoftext|>')].find((x) => x >= 0) ?? -1;
    return new BpeTokenizer(tokens, merges, added.map((a) => a.content), pre, roles ?? { bosId: bos, eosId: eos, addBos: false });
  }

  /** Builds from GGUF tokenizer.ggml.* metadata; an unknown `pre` throws RangeError listing known ones. */
  static fromGgufMetadata(m: BpeGgufMetadata): BpeTokenizer {
    if (!Array.isArray(m?.tokens)) throw new TypeError('BpeTokenizer.fromGgufMetadata: tokens must be an array of strings');
    if (!Array.isArray(m.merges)) throw new TypeError('BpeTokenizer.fromGgufMetadata: merges must be an array of strings');
    const specials = m.tokenTypes ? m.tokens.filter((_, i) => m.tokenTypes![i] === 3 || m.tokenTypes![i] === 4) : [];
    return new BpeTokenizer(m.tokens, m.merges.map((s) => splitMerge(s, 'fromGgufMetadata')), specials, m.pre, m);
  }

  /** Encodes text to ids. */
  encode(text: string, opts: BpeEncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') throw new TypeError('BpeTokenizer.encode: text must be a string');
    const out: number[] = [];
    if (opts.bos ?? this.addBos) {
      if (this.bosId < 0) throw new RangeError('BpeTokenizer.encode: bos requested but the tokenizer has no BOS token');
      out.push(this.bosId);
    }
    const special = opts.special ?? true;
    if (special && this.specialRe) {
      let last = 0;
      for (const m of text.matchAll(this.specialRe)) {
        this.encodePlain(text.slice(last, m.index), out);
        out.push(this.vocab.get(m[0])!);
        last = m.index + m[0].length;
      }
      this.encodePlain(text.slice(last), out);
    } else {
      this.encodePlain(text, out);
    }
    return Int32Array.from(out);
  }

  private encodePlain(text: string, out: number[]): void {
    if (!text) return;
    for (const word of this.pretok(text)) {
      let ids = this.cache.get(word);
      if (!ids) {
        ids = this.bpe(bytesToUnicode(enc.encode(word)));
        if (this.cache.size > 100_000) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Merges a byte-level word by rank (lowest rank first, leftmost on ties; heap-based, O(n log n)). */
  private bpe(word: string): number[] {
    const direct = this.vocab.get(word);
    if (direct !== undefined && !this.specialIds.has(direct)) return [direct];
    const parts = mergeByRank(Array.from(word), this.ranks);
    return parts.map((p) => {
      const id = this.vocab.get(p);
      if (id === undefined) throw new RangeError(`BpeTokenizer.encode: piece "${p}" is not in the vocabulary`);
      return id;
    });
  }

  /** Decodes ids to the exact bytes they stand for (special tokens as their UTF-8 text). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const out: number[] = [];
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      const t = this.tokens[id];
      if (t === undefined) throw new RangeError(`BpeTokenizer.decodeBytes: id ${id} at index ${k} is outside the vocabulary`);
      if (this.specialIds.has(id)) { for (const b of enc.encode(t)) out.push(b); continue; }
      for (const ch of t) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b === undefined) { for (const x of enc.encode(ch)) out.push(x); } else out.push(b);
      }
    }
    return Uint8Array.from(out);
  }

  /** Decodes ids to text (invalid UTF-8 becomes U+FFFD). */
  decode(ids: ArrayLike<number>): string { return dec.decode(this.decodeBytes(ids)); }
}

function splitMerge(s: string, fn: string): [string, string] {
  const i = s.indexOf(' ', 1);
  if (i < 0) throw new RangeError(`BpeTokenizer.${fn}: merge "${s}" is not two space-separated symbols`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** The 256 byte-level symbols, in byte order (the base alphabet of every byte-level vocabulary). */
export const BYTE_LEVEL_ALPHABET: readonly string[] = BYTE_TO_CHAR;
