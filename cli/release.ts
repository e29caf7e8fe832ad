/**
 * `fedtune release`: the program's signed adapter releases from a partner's side — make an
 * offline release key, sign a release the coordinator awaits, submit it (or a rollback) to a
 * coordinator's data dir, verify a release and its adapter, list a coordinator's releases.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { parseManifest, parsePublicKeyHex, parseReleaseFile, ReleaseError, releaseFileText, signManifest, verifyRelease } from '../proto/release.js';
import { releasesOnDisk, rollbackManifest, submitRelease } from '../server/releases.js';
import { CliError, num, parse, required } from './args.js';

/** Usage text. */
export const RELEASE_USAGE = `fedtune release keygen --out KEY               (an offline release key: KEY holds the secret seed, KEY.pub the public key)
              release sign --manifest F --key KEY [--out F2]   (sign the release file F the coordinator awaits)
              release submit --manifest F --data DIR           (hand a signed release or rollback to the coordinator at DIR)
              release rollback --data DIR --program ID --to V [--key KEY] (publish a rollback to version V; KEY for offline programs)
              release verify --manifest F --adapter A --key KEY|HEX [--base SHA256] [--program ID]
              release list --data DIR [--program ID] [--json]`;

function readFile(path: string, what: string): string {
  if (!existsSync(path)) throw new CliError(`${what} ${path} does not exist`);
  return readFileSync(path, 'utf8');
}

/** The secret key in a KEY file (64 hex characters: the Ed25519 seed). */
function secretKey(path: string): Uint8Array {
  const t = readFile(path, '--key file').trim();
  if (!/^[0-9a-f]{64}$/.test(t)) throw new CliError(`--key file ${path} does not hold a release secret key (64 hex characters, from fedtune release keygen)`);
  return nacl.sign.keyPair.fromSeed(Uint8Array.from(Buffer.from(t, 'hex'))).secretKey;
}

/** A public key: 64 hex characters, or a file holding them (KEY.pub), or a KEY file's secret (its public half). */
function publicKey(arg: string): Uint8Array {
  if (/^[0-9a-f]{64}$/.test(arg)) return parsePublicKeyHex(arg);
  const t = readFile(arg, '--key file').trim();
  if (existsSync(`${arg}.pub`) && !arg.endsWith('.pub')) return parsePublicKeyHex(readFileSync(`${arg}.pub`, 'utf8'), `${arg}.pub`);
  return parsePublicKeyHex(t, `--key file ${arg}`);
}

/** Run `fedtune release …`. */
export async function releaseCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const v = parse(rest, {
    out: { type: 'string' },
    manifest: { type: 'string' },
    key: { type: 'string' },
    data: { type: 'string' },
    program: { type: 'string' },
    to: { type: 'string' },
    adapter: { type: 'string' },
    base: { type: 'string' },
    json: { type: 'boolean' },
  } as const);
  try {
    if (sub === 'keygen') {
      const out = required(v, 'out');
      const seed = nacl.randomBytes(32);
      writeFileSync(out, `${Buffer.from(seed).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      const pub = Buffer.from(nacl.sign.keyPair.fromSeed(seed).publicKey).toString('hex');
      writeFileSync(`${out}.pub`, `${pub}\n`);
      process.stdout.write(`${pub}\n`);
    } else if (sub === 'sign') {
      const file = required(v, 'manifest');
      const r = parseReleaseFile(readFile(file, '--manifest file'), file);
      const m = parseManifest(r.manifest);
      const signed = { manifest: r.manifest, signature: signManifest(r.manifest, secretKey(required(v, 'key'))) };
      writeFileSync((v.out as string | undefined) ?? file, releaseFileText(signed));
      process.stdout.write(`signed release ${m.sequence} (${m.kind} of version ${m.version}) of program ${m.program}\n`);
    } else if (sub === 'submit') {
      const file = required(v, 'manifest');
      const r = parseReleaseFile(readFile(file, '--manifest file'), file);
      if (r.signature.length === 0) throw new CliError(`${file} is not signed; run fedtune release sign first`);
      process.stdout.write(`${submitRelease(required(v, 'data'), r)}\n`);
    } else if (sub === 'rollback') {
      const data = required(v, 'data');
      const manifest = rollbackManifest(data, required(v, 'program'), num(v, 'to', { integer: true, min: 0 }) ?? -1);
      // an offline program's rollback is signed here; a coordinator-held key signs it at the coordinator
      const signature = v.key ? signManifest(manifest, secretKey(v.key as string)) : new Uint8Array(0);
      process.stdout.write(`${submitRelease(data, { manifest, signature })}\n`);
    } else if (sub === 'verify') {
      const file = required(v, 'manifest');
      const r = parseReleaseFile(readFile(file, '--manifest file'), file);
      const adapterPath = required(v, 'adapter');
      if (!existsSync(adapterPath)) throw new CliError(`--adapter file ${adapterPath} does not exist`);
      const m = verifyRelease(r, publicKey(required(v, 'key')), { adapter: readFileSync(adapterPath), baseSha256: v.base as string | undefined, program: v.program as string | undefined });
      process.stdout.write(`ok: release ${m.sequence} of program ${m.program}, ${m.kind} of adapter version ${m.version} (round ${m.round}) for base ${m.baseSha256}\n`);
    } else if (sub === 'list') {
      const data = required(v, 'data');
      const programs = v.program ? [v.program as string] : (await import('node:fs')).readdirSync(`${data}/releases`).filter((n) => n !== 'inbox');
      const rows = programs.flatMap((p) => releasesOnDisk(data, p).map(({ file, release, manifest: m }) => ({ ...m, signed: release.signature.length > 0, file })));
      if (v.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else {
        process.stdout.write('program\tsequence\tkind\tversion\tround\tepsilon\tsigned\tadapter_sha256\ttime\n');
        for (const r of rows) process.stdout.write(`${r.program}\t${r.sequence}\t${r.kind}\t${r.version}\t${r.round}\t${r.epsilon}\t${r.signed ? 'yes' : 'awaiting'}\t${r.adapterSha256}\t${new Date(r.timestampMs).toISOString()}\n`);
      }
    } else throw new CliError(`fedtune release: unknown subcommand "${sub ?? ''}"; use keygen, sign, submit, rollback, verify or list`);
  } catch (e) {
    // a refused release is a plain failure (exit 1) with its sentence
    if (e instanceof ReleaseError) throw new Error(e.message);
    throw e;
  }
}
