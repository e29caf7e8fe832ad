/**
 * `fedtune generate`: print the prompt and its continuation to stdout, as llama2.c's run.c does;
 * or, with --json, one object with the ids fed, the ids generated and their text (and, with
 * --top-probs K, the K most likely next tokens at each generated position).
 */
import { QUANT_MODES } from '../server/config-names.js';
import { detectChatStyle, generateFromIds, renderChat, type ChatFormat, type ChatStyle, type TextTokenizer } from '../model/index.js';
import { CliError, log, num, parse } from './args.js';
import { baseChatTemplate, baseFiles } from './base-files.js';
import { chatStyleFor } from './chat.js';
import { loadModel, MODEL_OPTIONS } from './load.js';

/** Usage text. */
export const GENERATE_USAGE = `fedtune generate --prompt TEXT [--max-tokens N] [--temperature T (0 = greedy)] [--top-p P] [--seed S]
                 [--chat [--chat-format chatml|llama3]] [--json [--top-probs K]]
                 [--base FILE|DIR] [--tokenizer FILE] [--quant ${QUANT_MODES.join('|')}] [--adapter FILE] [--backend B]`;

/** One generated position's most likely next tokens (softmax of the raw logits, temperature 1). */
export interface TopProbs {
  readonly top: readonly { readonly id: number; readonly p: number }[];
}

/** The `k` largest probabilities of softmax(logits), most likely first (ties: lower id first). */
export function topProbs(logits: ArrayLike<number>, k: number): TopProbs {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const best: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (best.length === k && logits[i] <= logits[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return { top: best.map((id) => ({ id, p: Math.exp(logits[id] - max) / sum })) };
}

const FORMAT_TOKENS: Readonly<Record<ChatFormat, readonly string[]>> = {
  chatml: ['<|im_start|>', '<|im_end|>'],
  llama3: ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
};

/**
 * The ids to feed: the prompt as the base encodes it (its own BOS rule), or, with a chat style,
 * the prompt as a user message rendered with the generation prompt and tokenized as llama.cpp
 * and transformers do (special tokens parsed, no BOS added: the rendering carries its own).
 */
function promptIds(tokenizer: TextTokenizer, prompt: string, chat: ChatStyle | undefined): Int32Array {
  if (!chat) return tokenizer.encode(prompt);
  const have = new Set(tokenizer.specialTokens().map((t) => t.text));
  const missing = FORMAT_TOKENS[chat.format].filter((t) => !have.has(t));
  if (missing.length > 0) throw new CliError(`--chat: the base's tokenizer has no special token ${missing.join(', ')}, so it cannot use the ${chat.format} format`);
  const text = renderChat([{ role: 'user', content: prompt }], chat.format, { addGenerationPrompt: true, defaultSystem: chat.defaultSystem });
  return tokenizer.encode(text, { bos: false, special: true });
}

/** The chat style: --chat-format, else the base's own chat template, else its special tokens. */
function chatStyle(tokenizer: TextTokenizer, format: string | undefined, template: string | undefined): ChatStyle {
  if (format !== undefined || template === undefined || template.trim() === '') return chatStyleFor(tokenizer, format, undefined);
  const style = detectChatStyle(template, tokenizer.specialTokens());
  if (!style) throw new CliError('--chat: the base\'s chat template is neither ChatML nor Llama 3; give --chat-format chatml|llama3');
  return style;
}

/** Run the command. */
export async function generateCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    ...MODEL_OPTIONS,
    prompt: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    'top-probs': { type: 'string' },
    chat: { type: 'boolean' },
    'chat-format': { type: 'string' },
  });
  const maxTokens = num(v, 'max-tokens', { integer: true, min: 0 }) ?? 256;
  const temperature = num(v, 'temperature', { min: 0 }) ?? 0;
  const topP = num(v, 'top-p', { min: 0, max: 1 }) ?? 0.9;
  const seed = num(v, 'seed', { integer: true });
  const k = num(v, 'top-probs', { integer: true, min: 1 });
  if (k !== undefined && !v.json) throw new CliError('--top-probs needs --json');
  if (v['chat-format'] !== undefined && !v.chat) throw new CliError('--chat-format needs --chat');
  const prompt = typeof v.prompt === 'string' ? v.prompt : '';
  const template = v.chat ? baseChatTemplate(baseFiles(v)) : undefined;
  const { base, tokenizer, adapter } = await loadModel(v);
  if (k !== undefined && k > base.config.vocabSize) throw new CliError(`--top-probs ${k} exceeds the vocabulary of ${base.config.vocabSize} tokens`);
  const chat = v.chat ? chatStyle(tokenizer, v['chat-format'] as string | undefined, template) : undefined;
  if (chat) log(`chat: ${chat.format}${chat.defaultSystem !== undefined ? ` (default system message ${JSON.stringify(chat.defaultSystem)})` : ''}`);
  const ids = promptIds(tokenizer, prompt, chat);
  if (ids.length > base.config.seqLen) throw new CliError(`--prompt has ${ids.length} tokens, more than the model's context of ${base.config.seqLen}`);
  const fed = ids.length > 0 ? ids : Int32Array.of(tokenizer.startId);
  const steps: TopProbs[] = [];
  const opts = { maxTokens, temperature, topP, seed, adapter };
  if (v.json) {
    const g = generateFromIds(base, tokenizer, fed, { ...opts, onLogits: k === undefined ? undefined : (row) => steps.push(topProbs(row, k)) });
    const out: Record<string, unknown> = { prompt_ids: Array.from(fed), ids: g.ids, text: g.text };
    if (k !== undefined) out.steps = steps.slice(0, g.ids.length);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  // the prompt as the tokenizer reads it back (run.c prints its pieces), without the BOS text
  process.stdout.write(chat ? tokenizer.decode(ids) : tokenizer.decode(tokenizer.encode(prompt, { bos: false })));
  generateFromIds(base, tokenizer, fed, { ...opts, onText: (text) => process.stdout.write(text) });
  process.stdout.write('\n');
}
