/** `fedtune eval`: mean next-token loss of a text under the base (and adapter). */
import { QUANT_MODES } from '../server/config-names.js';
import { evaluateLoss } from '../model/index.js';
import { CliError, log, num, parse, required } from './args.js';
import { loadModel, MODEL_OPTIONS, readText } from './load.js';

/** Usage text. */
export const EVAL_USAGE = `fedtune eval --text FILE [--context N (default min(256, model context))] [--max-tokens N] [--json]
             [--base FILE|DIR] [--tokenizer FILE] [--quant ${QUANT_MODES.join('|')}] [--adapter FILE] [--backend B]`;

/** Run the command. */
export async function evalCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    ...MODEL_OPTIONS,
    text: { type: 'string' },
    context: { type: 'string' },
    'max-tokens': { type: 'string' },
    json: { type: 'boolean' },
  });
  const textPath = required(v, 'text');
  const context = num(v, 'context', { integer: true, min: 2 });
  const maxTokens = num(v, 'max-tokens', { integer: true, min: 1 });
  const text = readText('text', textPath);
  const { base, tokenizer, adapter } = await loadModel(v);
  if (context !== undefined && context > base.config.seqLen) throw new CliError(`--context ${context} exceeds the model's context of ${base.config.seqLen}`);
  const t0 = performance.now();
  const r = evaluateLoss(base, tokenizer.encode(text, { bos: false }), { startId: tokenizer.startId, context, maxTokens, adapter });
  log(`eval: ${r.tokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (v.json) process.stdout.write(`${JSON.stringify({ loss: r.loss, tokens: r.tokens })}\n`);
  else process.stdout.write(`loss ${r.loss.toFixed(4)} nats/token over ${r.tokens} tokens (perplexity ${Math.exp(r.loss).toFixed(2)})\n`);
}
