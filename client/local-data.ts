/**
 * A device's local data as what it trains on, by the program's `training.dataFormat`: plain text
 * as one token stream (every token scored), or chat JSONL conversations rendered with the base's
 * chat format as a token stream with its assistant-only loss mask. Replay tokens sampled from the
 * base are appended fully scored, as in text mode.
 */
import { ChatDataError, chatTrainingStream, parseChatJsonl, type ChatConversation, type ChatStyle, type DataFormat, type MaskedTokens, type TextTokenizer } from '../model/index.js';

/** Local data a device cannot train the program on (wrong format, no chat format on the base, no reply to learn from). */
export class LocalDataError extends RangeError {
  override name = 'LocalDataError';
  constructor(
    message: string,
    /** Set when the program wants local data in this format and the device holds the other. */
    readonly wanted?: DataFormat,
  ) {
    super(message);
  }
}

/** What {@link localTrainingData} needs to know of the base. */
export interface LocalDataBase {
  readonly tokenizer: TextTokenizer;
  /** The base's chat style (baseChatStyle); undefined when it has none. Only chat data needs it. */
  readonly chatStyle: ChatStyle | undefined;
}

/**
 * Tokens to train on from the device's local data `parts` (files or strings, in order).
 * `text`: the parts joined by newlines, tokenized without BOS (windows get the start token).
 * `chat`: each part is chat JSONL; every conversation is rendered with the base's chat style and
 * only assistant replies (and their end-of-turn tokens) are scored. Throws LocalDataError when
 * the base has no chat format, a line is malformed (naming the part and the line), or nothing
 * is left to score.
 */
export function localTrainingData(parts: readonly string[], format: DataFormat, base: LocalDataBase): Int32Array | MaskedTokens {
  const w = 'localTrainingData';
  if (!Array.isArray(parts) || parts.some((p) => typeof p !== 'string')) throw new TypeError(`${w}: parts must be an array of strings`);
  if (typeof base?.tokenizer?.encode !== 'function') throw new TypeError(`${w}: base.tokenizer must be a TextTokenizer`);
  if (format === 'text') return base.tokenizer.encode(parts.join('\n'), { bos: false });
  if (format !== 'chat') throw new TypeError(`${w}: format must be "text" or "chat", got ${JSON.stringify(format)}`);
  const style = base.chatStyle;
  if (!style) {
    throw new LocalDataError('the program trains on chat conversations (training.dataFormat "chat"), but this device\'s base has no chat format: neither a ChatML nor a Llama 3 chat template or special tokens');
  }
  const conversations: ChatConversation[] = [];
  parts.forEach((p, i) => {
    try {
      conversations.push(...parseChatJsonl(p, parts.length === 1 ? 'the local chat data' : `local chat data part ${i + 1}`));
    } catch (e) {
      if (e instanceof ChatDataError) throw new LocalDataError(`${e.message} (chat programs train on JSONL, one {"messages": [...]} conversation per line)`);
      throw e;
    }
  });
  if (conversations.length === 0) throw new LocalDataError('the local chat data holds no conversation');
  let data: MaskedTokens;
  try {
    data = chatTrainingStream(base.tokenizer, conversations, style.format, { defaultSystem: style.defaultSystem });
  } catch (e) {
    if (e instanceof RangeError) throw new LocalDataError(`cannot render the local chat data in the base's ${style.format} format: ${e.message}`);
    throw e;
  }
  if (!data.lossMask.includes(1)) throw new LocalDataError('the local chat data has no assistant reply to train on');
  return data;
}

/**
 * The training data once replay is mixed in: `mixed` is mixReplay(tokens of `data`, …), the local
 * tokens followed by replay tokens; with a loss mask, the replay part is scored in full.
 */
export function withReplay(data: Int32Array | MaskedTokens, mixed: Int32Array): Int32Array | MaskedTokens {
  if (data instanceof Int32Array) return mixed;
  if (mixed.length < data.tokens.length) throw new RangeError(`withReplay: the mixed stream (${mixed.length}) is shorter than the local data (${data.tokens.length})`);
  const lossMask = new Uint8Array(mixed.length).fill(1);
  lossMask.set(data.lossMask);
  return { tokens: mixed, lossMask };
}
