/** `fedtune generate`: print the prompt and its continuation to stdout, as llama2.c's run.c does. */
import { generate } from '../model/index.js';
import { CliError, num, parse } from './args.js';
import { loadModel, MODEL_OPTIONS } from './load.js';

/** Usage text. */
export const GENERATE_USAGE = `fedtune generate --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S]
                 [--base FILE] [--tokenizer FILE] [--quant none|int8|int4] [--adapter FILE] [--backend B]`;

/** Run the command. */
export async function generateCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    ...MODEL_OPTIONS,
    prompt: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
  });
  const maxTokens = num(v, 'max-tokens', { integer: true, min: 0 }) ?? 256;
  const temperature = num(v, 'temperature', { min: 0 }) ?? 0;
  const topP = num(v, 'top-p', { min: 0, max: 1 }) ?? 0.9;
  const seed = num(v, 'seed', { integer: true });
  const prompt = typeof v.prompt === 'string' ? v.prompt : '';
  const { base, tokenizer, adapter } = await loadModel(v);
  const promptIds = tokenizer.encode(prompt);
  if (promptIds.length > base.config.seqLen) throw new CliError(`--prompt has ${promptIds.length} tokens, more than the model's context of ${base.config.seqLen}`);
  // the prompt as the tokenizer reads it back (run.c prints its pieces), without the BOS text
  process.stdout.write(tokenizer.decode(tokenizer.encode(prompt, { bos: false })));
  generate(base, tokenizer, prompt, {
    maxTokens,
    temperature,
    topP,
    seed,
    adapter,
    onText: (text) => process.stdout.write(text),
  });
  process.stdout.write('\n');
}
