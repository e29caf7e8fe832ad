/**
 * The llama2.c tokenizer (tok*.bin): SentencePiece-style BPE with byte fallback and a dummy
 * leading space, encoding exactly as the reference run.c does, but in O(n log n) with a heap
 * so whole corpora encode quickly.
 */
import { readFileSync } from 'node:fs';
import { ModelFormatError } from './checkpoint.js';
import type { EncodeOptions, SpecialToken, TextTokenizer } from './text-tokenizer.js';

/** Id of the beginning-of-sequence token. */
export const BOS = 1;
/** Id of the end-of-sequence token. */
export const EOS = 2;
const BYTE_OFFSET = 3;

/** A loaded llama2.c (SentencePiece-style) tokenizer: BOS 1, EOS 2, bytes at 3..258, BOS added by default. */
export class Tokenizer implements TextTokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly bosId = BOS;
  readonly eosId = EOS;
  /** llama2.c prepends BOS to every prompt. */
  readonly addBos = true;
  /** Windows and samples start at BOS. */
  readonly startId = BOS;
  /** Raw bytes of every piece, by id. */
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  private readonly lookup = new Map<string, number>();
  private readonly decoder = new TextDecoder('utf-8');

  private constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    // keys are latin1 strings of the raw bytes, so byte sequences map one to one
    for (let i = pieces.length - 1; i >= 0; i--) this.lookup.set(Buffer.from(pieces[i]).toString('latin1'), i);
  }

  /** Number of tokens. */
  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Read tok*.bin; `vocabSize` is the model's, since the file does not record it. */
  static fromFile(path: string, vocabSize?: number): Tokenizer {
    if (typeof path !== 'string' || path === '') throw new TypeError('Tokenizer.fromFile: path must be a non-empty string');
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new ModelFormatError(`cannot read tokenizer ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return Tokenizer.parse(bytes, vocabSize, path);
  }

  /** Build from pieces (raw bytes) and scores, e.g. read from a GGUF file's metadata. */
  static fromPieces(pieces: readonly Uint8Array[], scores: ArrayLike<number>, source = '<pieces>'): Tokenizer {
    if (pieces.length !== scores.length) throw new ModelFormatError(`${source}: ${pieces.length} pieces but ${scores.length} scores`);
    if (pieces.length < BYTE_OFFSET + 256) throw new ModelFormatError(`${source}: only ${pieces.length} tokens; byte fallback needs at least 259`);
    return new Tokenizer([...pieces], Float32Array.from(scores), Math.max(1, ...pieces.map((p) => p.length)));
  }

  /** Parse tok*.bin bytes. Without `vocabSize`, reads pieces until the bytes end. */
  static parse(bytes: Uint8Array, vocabSize?: number, source = '<buffer>'): Tokenizer {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const bad = (why: string): never => {
      throw new ModelFormatError(`${source} is not a llama2.c tokenizer: ${why}`);
    };
    if (bytes.byteLength < 4) bad('file too small');
    const maxTokenLength = dv.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > 4096) bad(`max_token_length ${maxTokenLength} out of range`);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    while (vocabSize === undefined ? off < bytes.byteLength : pieces.length < vocabSize) {
      if (off + 8 > bytes.byteLength) bad(`truncated at token ${pieces.length}`);
      const score = dv.getFloat32(off, true);
      const len = dv.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || len > maxTokenLength || off + len > bytes.byteLength) bad(`token ${pieces.length} has bad length ${len}`);
      pieces.push(bytes.slice(off, off + len));
      scores.push(score);
      off += len;
    }
    if (off !== bytes.byteLength) bad(`${bytes.byteLength - off} trailing bytes after ${pieces.length} tokens`);
    if (pieces.length < BYTE_OFFSET + 256) bad(`only ${pieces.length} tokens; byte fallback needs at least 259`);
    return new Tokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  /** Generation ends at EOS, and at BOS as run.c's does. */
  isStop(id: number): boolean {
    return id === BOS || id === EOS;
  }

  /** The control tokens: 0 (unknown), BOS and EOS, with their piece text trimmed of llama2.c's newlines. */
  specialTokens(): readonly SpecialToken[] {
    return [0, BOS, EOS].filter((id) => id < this.pieces.length).map((id) => ({ id, text: Buffer.from(this.pieces[id]).toString('utf8').trim() }));
  }

  /**
   * Encode text as run.c does: BOS unless `opts.bos` is false, a dummy leading space (for
   * non-empty text), codepoint lookup with byte fallback, then repeatedly merge the adjacent
   * pair whose merged piece has the highest score (leftmost on ties). The vocabulary has no
   * special-token strings, so `opts.special` changes nothing.
   */
  encode(text: string, opts: EncodeOptions = {}): Int32Array {
    if (typeof text !== 'string') throw new TypeError('Tokenizer.encode: text must be a string');
    if (opts === null || typeof opts !== 'object') throw new TypeError('Tokenizer.encode: opts must be an options object such as { bos: false }');
    const out: number[] = [];
    if (opts.bos ?? this.addBos) out.push(BOS);
    if (text.length > 0) {
      const bytes = Buffer.from(' ' + text, 'utf8');
      const ids = this.initialIds(bytes);
      for (const id of this.merge(ids)) out.push(id);
    }
    return Int32Array.from(out);
  }

  private initialIds(bytes: Buffer): number[] {
    const ids: number[] = [];
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      // length of this UTF-8 sequence (continuation bytes 0b10xxxxxx group with their lead)
      let n = 1;
      while (n < 4 && i + n < bytes.length && (bytes[i + n] & 0xc0) === 0x80) n++;
      if (b < 0x80) n = 1;
      const id = this.lookup.get(bytes.toString('latin1', i, i + n));
      if (id !== undefined) ids.push(id);
      else for (let k = 0; k < n; k++) ids.push(bytes[i + k] + BYTE_OFFSET);
      i += n;
    }
    return ids;
  }

  private merge(ids: number[]): number[] {
    const n = ids.length;
    const tok = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const pairId = (i: number): number => {
      const j = next[i];
      if (j < 0) return -1;
      const key = Buffer.concat([this.pieces[tok[i]], this.pieces[tok[j]]]).toString('latin1');
      return this.lookup.get(key) ?? -1;
    };
    const push = (i: number): void => {
      const id = pairId(i);
      if (id >= 0) heap.push(this.scores[id], i, id, tok[i], tok[next[i]]);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      const e = heap.pop();
      const i = e.pos;
      const j = next[i];
      // skip entries made stale by an earlier merge
      if (!alive[i] || j < 0 || tok[i] !== e.left || tok[j] !== e.right) continue;
      tok[i] = e.merged;
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) push(prev[i]);
      push(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(tok[i]);
    return out;
  }

  /**
   * Bytes of one token as printed after `prev` (run.c's decode): the leading space of the first
   * piece after BOS is dropped, and <0xHH> pieces become the raw byte.
   */
  pieceBytes(prev: number, token: number): Uint8Array {
    this.checkId(token, 'token');
    if (token >= BYTE_OFFSET && token < BYTE_OFFSET + 256) return Uint8Array.of(token - BYTE_OFFSET);
    const p = this.pieces[token];
    return prev === BOS && p[0] === 0x20 ? p.subarray(1) : p;
  }

  /**
   * The bytes of a token sequence as run.c prints them: BOS and EOS print nothing, and the
   * dummy space of the first piece after BOS is dropped; `prev` is the token before the first
   * (default BOS, so the dummy space of text encoded without BOS is dropped too).
   */
  decodeBytes(tokens: ArrayLike<number>, prev = BOS): Uint8Array {
    const chunks: Uint8Array[] = [];
    let p = prev;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t === BOS || t === EOS) {
        p = t;
        continue;
      }
      chunks.push(this.pieceBytes(p, t));
      p = t;
    }
    return Buffer.concat(chunks);
  }

  /** Decode a token sequence to text (see {@link decodeBytes}; invalid UTF-8 becomes U+FFFD). */
  decode(tokens: ArrayLike<number>, prev = BOS): string {
    return this.decoder.decode(this.decodeBytes(tokens, prev));
  }

  private checkId(id: number, what: string): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
      throw new RangeError(`Tokenizer.decode: ${what} id ${id} is outside the vocabulary [0, ${this.pieces.length})`);
    }
  }
}

interface HeapEntry {
  score: number;
  pos: number;
  merged: number;
  left: number;
  right: number;
}

/** Max-heap on score, ties to the smallest position (run.c picks the leftmost best pair). */
class PairHeap {
  private a: HeapEntry[] = [];
  get size(): number {
    return this.a.length;
  }
  private before(x: HeapEntry, y: HeapEntry): boolean {
    return x.score > y.score || (x.score === y.score && x.pos < y.pos);
  }
  push(score: number, pos: number, merged: number, left: number, right: number): void {
    const a = this.a;
    a.push({ score, pos, merged, left, right });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): HeapEntry {
    const a = this.a;
    const top = a[0];
    const last = a.pop() as HeapEntry;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
