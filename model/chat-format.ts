/**
 * Chat formats of instruction-tuned bases, rendered without a Jinja engine: ChatML (Qwen2/2.5/3,
 * SmolLM) and Llama 3 header tokens. `tokenizeChat` marks the tokens the loss is taken on exactly
 * as Hugging Face's assistant-token mask does (TRL `assistant_only_loss`): every token that holds
 * a character of an assistant reply's content or of its end-of-turn token.
 */
import type { SpecialToken, TextTokenizer } from './text-tokenizer.js';

/** A base's chat format: `chatml` (`<|im_start|>role\ncontent<|im_end|>\n`) or `llama3` (header tokens). */
export type ChatFormat = 'chatml' | 'llama3';

/** Who speaks a message. */
export type ChatRole = 'system' | 'user' | 'assistant';

/** One message of a conversation. */
export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
  /**
   * Whether an assistant reply is trained on (OpenAI fine-tuning's `weight`): 0 leaves it
   * unscored, 1 or absent scores it. Only assistant messages may carry it.
   */
  readonly weight?: 0 | 1;
}

/** A chat format with the template's own habits. */
export interface ChatStyle {
  readonly format: ChatFormat;
  /**
   * System message the template inserts when the conversation does not start with one (Qwen2.5:
   * {@link QWEN25_DEFAULT_SYSTEM}; Qwen2: "You are a helpful assistant."). Absent: none inserted.
   */
  readonly defaultSystem?: string;
}

/** Options of {@link renderChat}. */
export interface ChatRenderOptions {
  /** Append the header of an assistant turn, as before generation. Default false. */
  readonly addGenerationPrompt?: boolean;
  /** See {@link ChatStyle.defaultSystem}. */
  readonly defaultSystem?: string;
}

/** Tokens of a rendered conversation and the positions the loss is taken on. */
export interface TokenizedChat {
  readonly ids: Int32Array;
  /** 1 where the token belongs to a scored assistant reply or its end-of-turn token, else 0. */
  readonly lossMask: Uint8Array;
}

/** The system message Qwen2.5-Instruct's template adds when a conversation has none. */
export const QWEN25_DEFAULT_SYSTEM = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';

const IM_START = '<|im_start|>';
const IM_END = '<|im_end|>';
const BEGIN_OF_TEXT = '<|begin_of_text|>';
const START_HEADER = '<|start_header_id|>';
const END_HEADER = '<|end_header_id|>';
const EOT = '<|eot_id|>';
const ROLES: readonly string[] = ['system', 'user', 'assistant'];

/**
 * Python's `str.strip()` (what Jinja's `trim` filter does in Hugging Face transformers):
 * Unicode whitespace plus the separators U+001C–U+001F and U+0085, but not U+FEFF.
 */
export function pythonStrip(s: string): string {
  const ws = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
  return s.replace(ws, '');
}

/** Reads a Jinja string literal's body: \n, \t, \', \", \\ unescaped. */
function jinjaUnescape(s: string): string {
  return s.replace(/\\(.)/gs, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c));
}

function specialTexts(specials: Iterable<string | SpecialToken> | undefined): Set<string> {
  const out = new Set<string>();
  for (const s of specials ?? []) out.add(typeof s === 'string' ? s : s.text);
  return out;
}

/**
 * The chat style of a base, from its Jinja chat template (GGUF `tokenizer.chat_template`,
 * tokenizer_config.json `chat_template`) or, without one, from its special tokens
 * (`<|im_start|>` → chatml, `<|start_header_id|>` → llama3). A template of neither kind gives
 * undefined. A ChatML template that writes a fixed system message when `messages[0]` is not
 * one (Qwen2, Qwen2.5, SmolLM2) gives that message as `defaultSystem`.
 */
export function detectChatStyle(template: string | undefined, specials?: Iterable<string | SpecialToken>): ChatStyle | undefined {
  if (template !== undefined && typeof template !== 'string') throw new TypeError('detectChatStyle: template must be a string or undefined');
  if (template !== undefined && template.trim() !== '') {
    if (template.includes(START_HEADER) && template.includes(EOT)) return { format: 'llama3' };
    if (!template.includes(IM_START)) return undefined;
    const checksFirst = /messages\[0\]\s*(?:\[\s*['"]role['"]\s*\]|\.role)\s*(?:==|!=)\s*['"]system['"]/.test(template);
    // a literal '<|im_start|>system\n…<|im_end|>' in one quoted string is a default system message
    const m = /(['"])<\|im_start\|>system(?:\\n|\n)((?:(?!\1)[^\\]|\\.)*?)<\|im_end\|>/s.exec(template);
    if (m && checksFirst && !/[{}]/.test(m[2]!)) return { format: 'chatml', defaultSystem: jinjaUnescape(m[2]!) };
    if (template.includes(QWEN25_DEFAULT_SYSTEM)) return { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM };
    return { format: 'chatml' };
  }
  const have = specialTexts(specials);
  if (have.has(IM_START) && have.has(IM_END)) return { format: 'chatml' };
  if (have.has(START_HEADER) && have.has(END_HEADER) && have.has(EOT)) return { format: 'llama3' };
  return undefined;
}

/** The chat format alone; see {@link detectChatStyle}. */
export function detectChatFormat(template: string | undefined, specials?: Iterable<string | SpecialToken>): ChatFormat | undefined {
  return detectChatStyle(template, specials)?.format;
}

/** Throws TypeError unless `messages` is an array of well-formed chat messages. */
export function validateChatMessages(where: string, messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TypeError(`${where}: messages must be an array`);
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new TypeError(`${where}: messages[${i}] must be an object`);
    if (!ROLES.includes(m.role)) throw new TypeError(`${where}: messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`);
    if (typeof m.content !== 'string') throw new TypeError(`${where}: messages[${i}].content must be a string`);
    if (m.weight !== undefined && (m.role !== 'assistant' || (m.weight !== 0 && m.weight !== 1))) {
      throw new TypeError(`${where}: messages[${i}].weight must be 0 or 1 and only on an assistant message`);
    }
  });
}

function checkFormat(where: string, format: ChatFormat): void {
  if (format !== 'chatml' && format !== 'llama3') throw new TypeError(`${where}: format must be 'chatml' or 'llama3', got ${JSON.stringify(format)}`);
}

/** A piece of rendered text; `scored` pieces are assistant content and end-of-turn tokens. */
interface Piece {
  readonly text: string;
  readonly scored: boolean;
}

function renderPieces(where: string, messages: readonly ChatMessage[], format: ChatFormat, opts: ChatRenderOptions): Piece[] {
  validateChatMessages(where, messages);
  checkFormat(where, format);
  if (opts.defaultSystem !== undefined && typeof opts.defaultSystem !== 'string') throw new TypeError(`${where}: defaultSystem must be a string`);
  const all = opts.defaultSystem !== undefined && messages[0]?.role !== 'system'
    ? [{ role: 'system' as const, content: opts.defaultSystem }, ...messages]
    : messages;
  const out: Piece[] = [];
  const plain = (text: string): void => { out.push({ text, scored: false }); };
  if (format === 'llama3' && all.length > 0) plain(BEGIN_OF_TEXT);
  for (const m of all) {
    const scored = m.role === 'assistant' && m.weight !== 0;
    const content = format === 'llama3' ? pythonStrip(m.content) : m.content;
    plain(format === 'chatml' ? `${IM_START}${m.role}\n` : `${START_HEADER}${m.role}${END_HEADER}\n\n`);
    out.push({ text: content, scored });
    out.push({ text: format === 'chatml' ? IM_END : EOT, scored });
    if (format === 'chatml') plain('\n');
  }
  if (opts.addGenerationPrompt) plain(format === 'chatml' ? `${IM_START}assistant\n` : `${START_HEADER}assistant${END_HEADER}\n\n`);
  return out;
}

/**
 * A conversation as the base's chat template renders it. ChatML: `<|im_start|>role\ncontent<|im_end|>\n`
 * per message; Llama 3: `<|begin_of_text|>`, then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
 * per message with the content trimmed. `addGenerationPrompt` appends an assistant header.
 */
export function renderChat(messages: readonly ChatMessage[], format: ChatFormat, opts: ChatRenderOptions = {}): string {
  return renderPieces('renderChat', messages, format, opts).map((p) => p.text).join('');
}

const utf8 = new TextEncoder();
const FORMAT_TOKENS: Record<ChatFormat, readonly string[]> = { chatml: [IM_START, IM_END], llama3: [BEGIN_OF_TEXT, START_HEADER, END_HEADER, EOT] };
const checkedVocab = new WeakMap<TextTokenizer, Set<ChatFormat>>();

/** Throws RangeError unless the format's control tokens are special tokens of the tokenizer. */
function checkVocabulary(where: string, tokenizer: TextTokenizer, format: ChatFormat): void {
  if (checkedVocab.get(tokenizer)?.has(format)) return;
  const have = specialTexts(tokenizer.specialTokens());
  const missing = FORMAT_TOKENS[format].filter((t) => !have.has(t));
  if (missing.length > 0) throw new RangeError(`${where}: the tokenizer has no special token ${missing.join(', ')}, so it cannot encode the ${format} format`);
  if (!checkedVocab.has(tokenizer)) checkedVocab.set(tokenizer, new Set());
  checkedVocab.get(tokenizer)!.add(format);
}

/**
 * Renders and tokenizes a conversation (the rendered text carries its own BOS, so none is
 * added) and marks the loss positions: lossMask[i] = 1 iff token i holds a byte of a scored
 * assistant reply's content or of its end-of-turn token (`<|im_end|>` / `<|eot_id|>`).
 * A token that straddles a reply's edge (e.g. newlines merged across the header) counts as the
 * reply's, as in Hugging Face's `return_assistant_tokens_mask`. Throws RangeError when the
 * tokenizer lacks the format's special tokens.
 */
export function tokenizeChat(tokenizer: TextTokenizer, messages: readonly ChatMessage[], format: ChatFormat, opts: { readonly defaultSystem?: string } = {}): TokenizedChat {
  const where = 'tokenizeChat';
  if (typeof tokenizer?.encode !== 'function' || typeof tokenizer.decodeBytes !== 'function' || typeof tokenizer.specialTokens !== 'function') {
    throw new TypeError(`${where}: tokenizer must be a TextTokenizer`);
  }
  const pieces = renderPieces(where, messages, format, { defaultSystem: opts.defaultSystem });
  checkVocabulary(where, tokenizer, format);
  // byte spans [start, end) of the scored pieces, in order
  const spans: [number, number][] = [];
  let pos = 0;
  for (const p of pieces) {
    const n = utf8.encode(p.text).length;
    if (p.scored && n > 0) {
      const last = spans[spans.length - 1];
      if (last && last[1] === pos) last[1] = pos + n; else spans.push([pos, pos + n]);
    }
    pos += n;
  }
  const ids = tokenizer.encode(pieces.map((p) => p.text).join(''), { bos: false, special: true });
  const lossMask = new Uint8Array(ids.length);
  let b = 0;
  let s = 0;
  for (let i = 0; i < ids.length; i++) {
    const len = tokenizer.decodeBytes([ids[i]!]).length;
    const end = b + len;
    while (s < spans.length && spans[s]![1] <= b) s++;
    const sp = spans[s]; // the first span ending after b
    if (sp && (len > 0 ? end > sp[0] : b >= sp[0])) lossMask[i] = 1;
    b = end;
  }
  if (b !== pos) throw new RangeError(`${where}: the tokens stand for ${b} bytes but the rendered conversation has ${pos}; the tokenizer does not decode token by token exactly`);
  return { ids, lossMask };
}
