/**
 * What every base's tokenizer offers, whatever its kind (SentencePiece-style for llama2.c bases,
 * byte-level BPE for Qwen / Llama 3 / SmolLM): encoding with the base's own BOS rule, exact byte
 * decoding, the token that starts every window, and the tokens that end a generation.
 */

/** Options of {@link TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend BOS. Default: the base's own setting ({@link TextTokenizer.addBos}). */
  readonly bos?: boolean;
  /** Match special-token strings (e.g. "<|im_start|>") as special tokens (default true); false encodes them as text. */
  readonly special?: boolean;
}

/** A special (control or added) token. */
export interface SpecialToken {
  readonly id: number;
  readonly text: string;
}

/** A base model's tokenizer. */
export interface TextTokenizer {
  /** `sentencepiece` (llama2.c / llama SPM vocabularies) or `bpe` (GPT-2 style byte-level BPE). */
  readonly kind: 'sentencepiece' | 'bpe';
  readonly vocabSize: number;
  /** BOS id, or −1 when the vocabulary has none. */
  readonly bosId: number;
  /** EOS id, or −1 when the vocabulary has none. */
  readonly eosId: number;
  /** Whether the base prepends BOS to a prompt (GGUF `tokenizer.ggml.add_bos_token`, `tokenizer_config.json` `add_bos_token`; llama2.c: yes). */
  readonly addBos: boolean;
  /**
   * The token that starts every training and evaluation window and every sampled sequence: BOS
   * when the vocabulary has one, else the document separator (e.g. Qwen's "<|endoftext|>").
   */
  readonly startId: number;
  /** True for tokens that end a generation (EOS, end-of-turn tokens such as "<|im_end|>" or "<|eot_id|>"). */
  isStop(id: number): boolean;
  /** Text to token ids. */
  encode(text: string, opts?: EncodeOptions): Int32Array;
  /** Token ids to the exact bytes they stand for (specials as their text). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** Token ids to text (invalid UTF-8 replaced by U+FFFD). */
  decode(ids: ArrayLike<number>): string;
  /** The special tokens, by id. */
  specialTokens(): readonly SpecialToken[];
}

/** What sampling needs of a tokenizer: where sequences start and which tokens end them. */
export type TokenRoles = Pick<TextTokenizer, 'startId' | 'isStop'>;
