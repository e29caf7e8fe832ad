/**
 * Conversations as a device's training data: JSONL of `{"messages":[{"role","content"}…]}`
 * (the Hugging Face / OpenAI chat fine-tuning layout), strictly validated, rendered with the
 * base's chat format and concatenated into one token stream with its loss mask.
 */
import { tokenizeChat, type ChatFormat, type ChatMessage } from './chat-format.js';
import type { TextTokenizer } from './text-tokenizer.js';
import type { MaskedTokens } from './windows.js';

/** One conversation. */
export interface ChatConversation {
  readonly messages: readonly ChatMessage[];
}

/** A malformed line of a chat JSONL file; the message names the source and the line. */
export class ChatDataError extends RangeError {
  override name = 'ChatDataError';
  constructor(
    readonly source: string,
    /** 1-based line number. */
    readonly line: number,
    what: string,
  ) {
    super(`${source} line ${line}: ${what}`);
  }
}

const ROLES = new Set(['system', 'user', 'assistant']);
const MESSAGE_KEYS = new Set(['role', 'content', 'weight']);

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

/**
 * Parses chat JSONL: one JSON object per line with a non-empty `messages` array of
 * `{role: "system"|"user"|"assistant", content: string}` (an assistant message may carry
 * `weight: 0|1`, OpenAI's flag for whether it is trained on). Other top-level keys are ignored;
 * other message keys (e.g. tool calls, which would be lost) are refused. Blank lines are
 * skipped. A bad line throws {@link ChatDataError} naming `source` and the line.
 */
export function parseChatJsonl(text: string, source = '<chat jsonl>'): ChatConversation[] {
  if (typeof text !== 'string') throw new TypeError('parseChatJsonl: text must be a string');
  if (typeof source !== 'string') throw new TypeError('parseChatJsonl: source must be a string');
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split('\n');
  const out: ChatConversation[] = [];
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const bad = (what: string): never => { throw new ChatDataError(source, lineNo, what); };
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      bad(`not valid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) bad(`expected a JSON object, got ${describe(obj)}`);
    const messages = (obj as { messages?: unknown }).messages;
    if (!Array.isArray(messages)) bad(`"messages" must be an array, got ${messages === undefined ? 'nothing' : describe(messages)}`);
    if ((messages as unknown[]).length === 0) bad('"messages" is empty');
    const parsed = (messages as unknown[]).map((m, k): ChatMessage => {
      const at = `messages[${k}]`;
      if (typeof m !== 'object' || m === null || Array.isArray(m)) bad(`${at} must be an object, got ${describe(m)}`);
      const o = m as Record<string, unknown>;
      for (const key of Object.keys(o)) if (!MESSAGE_KEYS.has(key)) bad(`${at} has the unsupported key ${JSON.stringify(key)} (only role, content and weight)`);
      if (typeof o.role !== 'string' || !ROLES.has(o.role)) bad(`${at}.role must be "system", "user" or "assistant", got ${JSON.stringify(o.role) ?? 'nothing'}`);
      if (typeof o.content !== 'string') bad(`${at}.content must be a string, got ${o.content === undefined ? 'nothing' : describe(o.content)}`);
      if (o.weight !== undefined) {
        if (o.role !== 'assistant') bad(`${at}.weight is only allowed on assistant messages`);
        if (o.weight !== 0 && o.weight !== 1) bad(`${at}.weight must be 0 or 1, got ${JSON.stringify(o.weight)}`);
        return { role: 'assistant', content: o.content as string, weight: o.weight as 0 | 1 };
      }
      return { role: o.role as ChatMessage['role'], content: o.content as string };
    });
    out.push({ messages: parsed });
  });
  return out;
}

/**
 * Renders and tokenizes every conversation (each with its own BOS, if the format has one) and
 * concatenates them: the token stream and its loss mask (1 on assistant replies and their
 * end-of-turn tokens), ready for LocalTrainer and evaluateLoss.
 */
export function chatTrainingStream(
  tokenizer: TextTokenizer,
  conversations: readonly ChatConversation[],
  format: ChatFormat,
  opts: { readonly defaultSystem?: string } = {},
): MaskedTokens {
  if (!Array.isArray(conversations)) throw new TypeError('chatTrainingStream: conversations must be an array');
  const parts = conversations.map((c, i) => {
    if (typeof c !== 'object' || c === null || !Array.isArray(c.messages)) throw new TypeError(`chatTrainingStream: conversations[${i}] must be an object with a messages array`);
    return tokenizeChat(tokenizer, c.messages, format, opts);
  });
  const n = parts.reduce((a, p) => a + p.ids.length, 0);
  const tokens = new Int32Array(n);
  const lossMask = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    tokens.set(p.ids, off);
    lossMask.set(p.lossMask, off);
    off += p.ids.length;
  }
  return { tokens, lossMask };
}
