/**
 * Streaming detokenization: the bytes each new token adds (in the context of the token before
 * it, as SentencePiece's dummy space needs), and the text they complete — a UTF-8 character
 * split over several tokens comes out once, when its last byte arrives.
 */
import type { TextTokenizer } from './text-tokenizer.js';

/** What {@link TokenTextStream.push} returns. */
export interface TokenPiece {
  /** The exact bytes this token adds. */
  readonly bytes: Uint8Array;
  /** Text completed by these bytes (possibly empty while a character is still incomplete). */
  readonly text: string;
}

/** Decodes tokens one at a time, as they are generated. */
export class TokenTextStream {
  private readonly decoder = new TextDecoder('utf-8');
  private prev: number | undefined;

  /** `prev`: the token before the first pushed one (the prompt's last), if any. */
  constructor(private readonly tokenizer: TextTokenizer, prev?: number) {
    if (!tokenizer || typeof tokenizer.decodeBytes !== 'function') throw new TypeError('TokenTextStream: tokenizer must be a TextTokenizer');
    if (prev !== undefined && !Number.isInteger(prev)) throw new TypeError(`TokenTextStream: prev must be an integer token id, got ${prev}`);
    this.prev = prev;
  }

  /** The bytes `id` adds after the previous token, and the text they complete. */
  push(id: number): TokenPiece {
    if (!Number.isInteger(id)) throw new TypeError(`TokenTextStream.push: id must be an integer token id, got ${id}`);
    let bytes: Uint8Array;
    if (this.prev === undefined) bytes = this.tokenizer.decodeBytes([id]);
    else {
      // a token's bytes can depend on the one before (the dummy space after BOS): decode the pair, drop the first's bytes
      const head = this.tokenizer.decodeBytes([this.prev]).length;
      bytes = this.tokenizer.decodeBytes([this.prev, id]).subarray(head);
    }
    this.prev = id;
    return { bytes, text: this.decoder.decode(bytes, { stream: true }) };
  }

  /** Text still held back (an incomplete character at the end, as U+FFFD); resets the decoder. */
  flush(): string {
    return this.decoder.decode();
  }
}
