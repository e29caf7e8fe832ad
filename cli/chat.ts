/** `--chat` data for the CLI: chat JSONL rendered with the base's chat format, with its loss mask. */
import { existsSync, readFileSync } from 'node:fs';
import { ChatDataError, chatTrainingStream, detectChatStyle, parseChatJsonl, type ChatFormat, type ChatStyle, type MaskedTokens } from '../model/index.js';
import type { TextTokenizer } from '../model/text-tokenizer.js';
import { CliError } from './args.js';

/** Chat format choices of `--chat-format`. */
export const CHAT_FORMATS: readonly ChatFormat[] = ['chatml', 'llama3'];

function isTextTokenizer(t: unknown): t is TextTokenizer {
  const o = t as Partial<TextTokenizer> | null;
  return typeof o === 'object' && o !== null && typeof o.encode === 'function' && typeof o.decodeBytes === 'function' && typeof o.specialTokens === 'function';
}

/**
 * The chat style to render with: `--chat-format` if given; else from `--chat-template FILE`
 * (a Jinja template, or a tokenizer_config.json holding `chat_template`); else from the
 * tokenizer's special tokens. Throws CliError when none says.
 */
export function chatStyleFor(tokenizer: unknown, format: string | undefined, templatePath: string | undefined): ChatStyle {
  let template: string | undefined;
  if (templatePath !== undefined) {
    if (!existsSync(templatePath)) throw new CliError(`--chat-template file ${templatePath} does not exist`);
    template = readFileSync(templatePath, 'utf8');
    if (templatePath.endsWith('.json')) {
      let cfg: { chat_template?: unknown };
      try {
        cfg = JSON.parse(template) as { chat_template?: unknown };
      } catch {
        throw new CliError(`--chat-template file ${templatePath} is not valid JSON`);
      }
      const t = Array.isArray(cfg.chat_template) ? (cfg.chat_template as { name?: string; template?: string }[]).find((x) => x.name === 'default')?.template : cfg.chat_template;
      if (typeof t !== 'string') throw new CliError(`--chat-template file ${templatePath} has no chat_template string`);
      template = t;
    }
  }
  const detected = detectChatStyle(template, isTextTokenizer(tokenizer) ? tokenizer.specialTokens() : []);
  if (format !== undefined) {
    if (!(CHAT_FORMATS as readonly string[]).includes(format)) throw new CliError(`--chat-format must be one of ${CHAT_FORMATS.join(', ')}, got "${format}"`);
    return { format: format as ChatFormat, ...(detected?.format === format && detected.defaultSystem !== undefined ? { defaultSystem: detected.defaultSystem } : {}) };
  }
  if (!detected) {
    throw new CliError(template !== undefined
      ? `--chat-template ${templatePath} is neither ChatML nor Llama 3; give --chat-format chatml|llama3`
      : 'the base\'s tokenizer has neither ChatML (<|im_start|>) nor Llama 3 (<|start_header_id|>) special tokens; give --chat-format or --chat-template');
  }
  return detected;
}

/** Reads a chat JSONL file named by `--flag` and tokenizes it: tokens and the assistant-only loss mask. */
export function readChatData(flag: string, path: string, tokenizer: unknown, style: ChatStyle): MaskedTokens {
  if (!isTextTokenizer(tokenizer)) throw new CliError('--chat needs a base with a byte-level BPE tokenizer (a GGUF chat model); this base\'s tokenizer has no special tokens');
  if (!existsSync(path)) throw new CliError(`--${flag} file ${path} does not exist`);
  let data: MaskedTokens;
  try {
    data = chatTrainingStream(tokenizer, parseChatJsonl(readFileSync(path, 'utf8'), path), style.format, { defaultSystem: style.defaultSystem });
  } catch (e) {
    if (e instanceof ChatDataError) throw new CliError(`--${flag}: ${e.message}`);
    throw e;
  }
  if (data.tokens.length === 0) throw new CliError(`--${flag} file ${path} holds no conversation`);
  if (!data.lossMask.includes(1)) throw new CliError(`--${flag} file ${path} has no assistant reply to train on`);
  return data;
}
