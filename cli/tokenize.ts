/** `fedtune tokenize`: a text's token ids under a base's tokenizer (no weights, no TensorFlow.js). */
import { CliError, parse } from './args.js';
import { baseFiles, formatErrors, openTokenizer } from './base-files.js';

/** Usage text. */
export const TOKENIZE_USAGE = `fedtune tokenize --base FILE|DIR --text TEXT [--bos] [--special-as-text] [--json] [--tokenizer FILE]`;

/** Run the command: ids space-separated, or `{"ids":[…]}` with --json. */
export async function tokenizeCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    base: { type: 'string' },
    tokenizer: { type: 'string' },
    text: { type: 'string' },
    bos: { type: 'boolean' },
    'special-as-text': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  // the empty text is a text (its ids are [] or [BOS])
  if (typeof v.text !== 'string') throw new CliError('--text is required (the text to tokenize)');
  const text = v.text;
  const tokenizer = openTokenizer(baseFiles(v));
  const bos = v.bos === true;
  if (bos && tokenizer.bosId < 0) throw new CliError('--bos: this base\'s vocabulary has no BOS token');
  const ids = Array.from(formatErrors(() => tokenizer.encode(text, { bos, special: v['special-as-text'] !== true })));
  process.stdout.write(v.json ? `${JSON.stringify({ ids })}\n` : `${ids.join(' ')}\n`);
}
