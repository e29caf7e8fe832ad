/**
 * Hostile tar variants beyond dir-bundle.spec.ts: GNU long names, pax headers and sparse files
 * (made by GNU tar itself), and hand-written ustar headers (POSIX.1 field layout, checksum as the
 * standard defines it) with base-256 and negative sizes, an 8 GiB declared size, NUL and
 * backslashes in names, names that differ only in case or Unicode form (one file on macOS and
 * Windows), deep paths through the prefix field, and many entries. Each is refused with a
 * ModelFormatError naming the bundle, leaving nothing behind and nothing written outside.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractUstarBundle, ModelFormatError } from '../../model/index.js';

const tar = (args: string[], cwd?: string): string => execFileSync('tar', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Header fields (POSIX.1-1988 ustar): offset and length. */
const F = { name: [0, 100], mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], chksum: [148, 8], type: [156, 1], magic: [257, 6], version: [263, 2], prefix: [345, 155] } as const;

/** One ustar header block; `size` is raw bytes for the size field (octal text unless given as bytes). */
function ustarHeader(o: { name: Uint8Array | string; size?: string | Uint8Array; type?: string; prefix?: string }): Buffer {
  const h = Buffer.alloc(512);
  const put = (f: readonly [number, number], v: string | Uint8Array): void => {
    const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v);
    assert.ok(b.length <= f[1]);
    b.copy(h, f[0]);
  };
  put(F.name, typeof o.name === 'string' ? Buffer.from(o.name, 'utf8') : o.name);
  put(F.mode, '0000644\0');
  put(F.uid, '0000000\0');
  put(F.gid, '0000000\0');
  put(F.size, o.size ?? '00000000000\0');
  put(F.mtime, '00000000000\0');
  put(F.type, o.type ?? '0');
  put(F.magic, 'ustar\0');
  put(F.version, '00');
  if (o.prefix) put(F.prefix, Buffer.from(o.prefix, 'utf8'));
  // the checksum: the sum of all header bytes as unsigned, with the checksum field taken as eight spaces
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of h) sum += x;
  put(F.chksum, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** An archive: each entry's header then its data padded to 512, then two zero blocks. */
function archive(entries: { header: Buffer; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(e.header);
    if (e.data) parts.push(e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

const file = (name: string | Uint8Array, data: string): { header: Buffer; data: Buffer } => ({ header: ustarHeader({ name, size: `${Buffer.byteLength(data).toString(8).padStart(11, '0')}\0` }), data: Buffer.from(data) });

describe('model: hostile tar variants are refused by the bundle reader', function () {
  this.timeout(20_000);
  const arena = mkdtempSync(join(tmpdir(), 'fedtune-tar-hostile-'));
  const src = mkdtempSync(join(tmpdir(), 'fedtune-tar-src-'));
  let k = 0;

  const refuse = (bytes: Buffer | string, why: RegExp): void => {
    const path = typeof bytes === 'string' ? bytes : join(src, `evil-${k++}.tar`);
    if (typeof bytes !== 'string') writeFileSync(path, bytes);
    const out = join(arena, 'out');
    assert.throws(() => extractUstarBundle(path, out), (e: unknown) => e instanceof ModelFormatError && e.message.includes(path) && why.test(e.message), why.source);
    assert.ok(!existsSync(out), 'the target directory is removed');
    assert.deepEqual(readdirSync(arena), [], 'nothing is written beside it');
  };

  it('the hand-written headers are real tar: GNU tar reads a good one', () => {
    const p = join(src, 'good.tar');
    writeFileSync(p, archive([file('a.json', '{}'), file('b.bin', 'x'.repeat(600))]));
    assert.deepEqual(tar(['-tf', p]).trim().split('\n'), ['a.json', 'b.bin']);
    const got = extractUstarBundle(p, join(src, 'good'));
    assert.deepEqual(got.files, ['a.json', 'b.bin']);
    assert.equal(readFileSync(join(src, 'good', 'b.bin'), 'utf8'), 'x'.repeat(600));
  });

  it('GNU long names, pax extended headers and sparse files (made by GNU tar)', () => {
    const long = 'n'.repeat(150);
    writeFileSync(join(src, long), 'long');
    const gnu = join(src, 'gnu-long.tar');
    tar(['--format=gnu', '-cf', gnu, long], src);
    refuse(gnu, /not a POSIX ustar header|GNU long name/);
    const pax = join(src, 'pax-long.tar');
    tar(['--format=pax', '-cf', pax, long], src);
    refuse(pax, /pax extended header/);
    execFileSync('truncate', ['-s', '1M', join(src, 'sparse')]);
    const sparse = join(src, 'sparse.tar');
    tar(['--format=pax', '--sparse', '-cf', sparse, 'sparse'], src);
    refuse(sparse, /pax extended header|not a regular file/);
    refuse(archive([{ header: ustarHeader({ name: 'a', type: 'S' }) }]), /of type "S", not a regular file/);
  });

  it('base-256, negative, malformed and huge declared sizes (no allocation: refused before reading)', () => {
    const b256 = new Uint8Array(12);
    b256[0] = 0x80; // GNU base-256: high bit set, big-endian value in the rest
    b256[11] = 5;
    refuse(archive([{ header: ustarHeader({ name: 'a', size: b256 }), data: Buffer.from('hello') }]), /unreadable size field/);
    refuse(archive([{ header: ustarHeader({ name: 'a', size: new Uint8Array(12).fill(0xff) }) }]), /unreadable size field/); // base-256 −1
    refuse(archive([{ header: ustarHeader({ name: 'a', size: '-0000000001\0' }) }]), /unreadable size field/);
    refuse(archive([{ header: ustarHeader({ name: 'a', size: '0000000008\0\0' }) }]), /unreadable size field/);
    refuse(archive([{ header: ustarHeader({ name: 'a', size: '77777777777\0' }) }]), /truncated \(entry "a" needs 8589934591 bytes/);
  });

  it('NUL inside a name ends it, as GNU tar reads it; nothing after the NUL is used', () => {
    const p = join(src, 'nul.tar');
    writeFileSync(p, archive([file(Buffer.from('a\0../../escaped', 'latin1'), 'data')]));
    assert.deepEqual(tar(['-tf', p]).trim().split('\n'), ['a']);
    const out = join(src, 'nul-out');
    assert.deepEqual(extractUstarBundle(p, out).files, ['a']);
    assert.deepEqual(readdirSync(out), ['a']);
    assert.ok(!existsSync(join(src, '..', 'escaped')));
  });

  it('backslashes, deep paths through the prefix field, and unusable names', () => {
    refuse(archive([file('..\\evil', 'x')]), /path traversal/);
    refuse(archive([file('dir\\file', 'x')]), /not a file at the top level/);
    refuse(archive([{ header: ustarHeader({ name: 'config.json', prefix: 'a/'.repeat(70) + 'b' }) }]), /not a file at the top level/);
    refuse(archive([{ header: ustarHeader({ name: 'x', prefix: '..' }) }]), /path traversal/);
    refuse(archive([file('.', 'x')]), /unusable name/);
    refuse(archive([file('C:evil', 'x')]), /absolute name/);
  });

  it('names that differ only in case or Unicode normal form (one file on macOS and Windows)', () => {
    refuse(archive([file('Config.json', '{"evil":1}'), file('config.json', '{}')]), /"Config.json" and "config.json", which differ only in case/);
    const nfc = 'caf\u00e9.json';
    const nfd = 'cafe\u0301.json';
    refuse(archive([file(nfc, '1'), file(nfd, '2')]), /differ only in case or Unicode form/);
  });

  it('many tiny entries stay fast (duplicate checks are not quadratic)', () => {
    const many = archive(Array.from({ length: 4000 }, (_, i) => ({ header: ustarHeader({ name: `f${i}` }) })));
    const t0 = performance.now();
    writeFileSync(join(src, 'many.tar'), many);
    const got = extractUstarBundle(join(src, 'many.tar'), join(src, 'many'));
    assert.equal(got.files.length, 4000);
    assert.ok(performance.now() - t0 < 10_000);
  });
});
