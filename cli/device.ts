/** `fedtune device`: take part in a program from this machine, training on local text (or chat JSONL) files. */
import { readFileSync, existsSync } from 'node:fs';
import { Device, LocalDataError } from '../client/index.js';
import { ReleaseKeeper } from '../client/releases.js';
import { CliError, log, num, parse, required } from './args.js';
import { DEVICE_TLS_FLAGS, DEVICE_TLS_USAGE, deviceChannelCredentials } from './transport.js';

/** Usage text. */
export const DEVICE_USAGE = `fedtune device --coordinator HOST:PORT[,HOST:PORT…] --program ID --data DIR --token T --text FILE [--text FILE …]
              ${DEVICE_TLS_USAGE}
              [--rounds N] [--label L] [--seed S (batch sampling only; privacy noise is always crypto-random)]
              [--max-wait SECONDS] [--max-rank R (train a smaller LoRA rank)]
              [--chat (the --text files are chat JSONL, for a program with training.dataFormat "chat")]
              [--release-key HEX (the program's release key, given out of band)] [--keep-releases K (default 3)]
       fedtune device --program ID --data DIR --pin V | --unpin | --rollback | --releases [--json]   (offline)`;

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
    pin: { type: 'string' },
    unpin: { type: 'boolean' },
    rollback: { type: 'boolean' },
    releases: { type: 'boolean' },
    json: { type: 'boolean' },
    'release-key': { type: 'string' },
    'keep-releases': { type: 'string' },
    ...DEVICE_TLS_FLAGS,
  } as const);
  if (v.pin !== undefined || v.unpin || v.rollback || v.releases) return releasesOffline(v);
  const texts = (v.text as unknown as string[] | undefined) ?? [];
  if (texts.length === 0) throw new CliError('--text is required (a file of local text; repeat for more)');
  for (const t of texts) if (!existsSync(t)) throw new CliError(`--text file ${t} does not exist`);
  const maxWait = num(v, 'max-wait', { min: 0, minExclusive: true });
  const credentials = deviceChannelCredentials(v, (w) => log(JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg: w })));
  const device = new Device({
    credentials,
    // replicas' addresses, comma-separated: the next is tried when one is UNAVAILABLE
    address: coordinatorAddresses(required(v, 'coordinator')),
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
    releaseKey: v['release-key'] as string | undefined,
    keepReleases: num(v, 'keep-releases', { integer: true, min: 1 }),
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

/** --pin / --unpin / --rollback / --releases: the device's verified releases, without a coordinator. */
function releasesOffline(v: Record<string, string | boolean | undefined>): void {
  const keeper = new ReleaseKeeper(required(v, 'data'), required(v, 'program'), num(v, 'keep-releases', { integer: true, min: 1 }) ?? 3);
  try {
    if (v.pin !== undefined) keeper.pin(num(v, 'pin', { integer: true, min: 0 }) ?? -1);
    if (v.unpin) keeper.unpin();
    if (v.rollback) keeper.rollback();
  } catch (e) {
    if (e instanceof RangeError) throw new CliError(e.message.replace(/^ReleaseKeeper\.\w+: /, ''));
    throw e;
  }
  const active = keeper.active();
  const out = { active: active ? { version: active.version, sequence: active.sequence, kind: active.manifest.kind, pinned: active.pinned, path: active.path } : null, kept: keeper.list().map((k) => ({ version: k.version, sequence: k.sequence, kind: k.kind, adapterSha256: k.adapterSha256 })) };
  if (v.json || v.releases) process.stdout.write(`${JSON.stringify(out)}\n`);
  else process.stdout.write(active ? `using adapter version ${active.version}${active.pinned ? ' (pinned)' : ''}: ${active.path}\n` : 'no verified release yet\n');
}

/** `--coordinator a,b,c`: one address, or the list of coordinator replicas' addresses. */
export function coordinatorAddresses(flag: string): string[] {
  const list = flag.split(',').map((a) => a.trim());
  if (list.some((a) => a === '')) throw new CliError(`--coordinator must be HOST:PORT or a comma-separated list of them, got "${flag}"`);
  return list;
}
