/** `fedtune device`: take part in a program from this machine, training on local text (or chat JSONL) files. */
import { readFileSync, existsSync } from 'node:fs';
import { Device, LocalDataError } from '../client/index.js';
import { CliError, log, num, parse, required } from './args.js';

/** Usage text. */
export const DEVICE_USAGE = `fedtune device --coordinator HOST:PORT --program ID --data DIR --token T --text FILE [--text FILE …]
              [--rounds N] [--label L] [--seed S (batch sampling only; privacy noise is always crypto-random)]
              [--max-wait SECONDS] [--max-rank R (train a smaller LoRA rank)]
              [--chat (the --text files are chat JSONL, for a program with training.dataFormat "chat")]`;

/** Run the command until the program completes (or --rounds rounds were joined). */
export async function deviceCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    coordinator: { type: 'string' },
    program: { type: 'string' },
    data: { type: 'string' },
    token: { type: 'string' },
    text: { type: 'string', multiple: true },
    rounds: { type: 'string' },
    label: { type: 'string' },
    seed: { type: 'string' },
    'max-wait': { type: 'string' },
    'max-rank': { type: 'string' },
    chat: { type: 'boolean' },
  } as const);
  const texts = (v.text as unknown as string[] | undefined) ?? [];
  if (texts.length === 0) throw new CliError('--text is required (a file of local text; repeat for more)');
  for (const t of texts) if (!existsSync(t)) throw new CliError(`--text file ${t} does not exist`);
  const maxWait = num(v, 'max-wait', { min: 0, minExclusive: true });
  const device = new Device({
    address: required(v, 'coordinator'),
    programId: required(v, 'program'),
    dataDir: required(v, 'data'),
    enrolmentToken: required(v, 'token'),
    text: (function* () {
      for (const t of texts) yield readFileSync(t, 'utf8');
    })(),
    label: v.label as string | undefined,
    maxRounds: num(v, 'rounds', { integer: true, min: 1 }),
    seed: num(v, 'seed', { integer: true }),
    maxWaitMs: maxWait === undefined ? undefined : maxWait * 1000,
    maxRank: num(v, 'max-rank', { integer: true, min: 1 }),
    // the program's training.dataFormat must match what the files are
    dataFormat: v.chat === true ? 'chat' : 'text',
  });
  device.progress$.subscribe((e) => {
    if (e.kind === 'training' && e.step !== e.totalSteps && e.step % 10 !== 0) return;
    log(JSON.stringify({ time: new Date().toISOString(), ...e }));
  });
  const ac = new AbortController();
  process.once('SIGTERM', () => ac.abort());
  process.once('SIGINT', () => ac.abort());
  try {
    const s = await device.run(ac.signal);
    process.stdout.write(`${JSON.stringify(s)}\n`);
  } catch (e) {
    // the local data does not fit the program: a user error, said in CLI terms
    if (e instanceof LocalDataError) {
      const hint = e.wanted === 'chat' ? ' (pass --chat with chat JSONL --text files)' : e.wanted === 'text' ? ' (drop --chat and pass plain text files)' : '';
      throw new CliError(`${e.message}${hint}`);
    }
    throw e;
  } finally {
    device.close();
  }
}
