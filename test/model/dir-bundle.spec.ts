/**
 * The ustar bundle writer and strict reader, checked against GNU tar (run as a child process):
 * tar lists and extracts fedtune's bundles identically, fedtune reads tar's `--format=ustar`
 * archives, and hostile archives (most made by tar itself) are refused without writing outside
 * the target directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractUstarBundle, ModelFormatError, writeUstarBundle } from '../../model/index.js';

const tar = (args: string[], cwd?: string): string => execFileSync('tar', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A folder with files of awkward sizes: empty, exactly one block, one byte over, a few blocks and a bit. */
function sourceDir(): { dir: string; files: Record<string, Buffer> } {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bundle-src-'));
  const files: Record<string, Buffer> = {
    'config.json': Buffer.from('{"a":1}\n'),
    'empty.txt': Buffer.alloc(0),
    'one-block.bin': randomBytes(512),
    'over.bin': randomBytes(513),
    'model.safetensors': randomBytes(3000),
  };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return { dir, files };
}

const entries = (dir: string, names: string[]) => names.map((name) => ({ name, path: join(dir, name) }));

function assertSameFiles(dir: string, files: Record<string, Buffer>): void {
  assert.deepEqual(readdirSync(dir).sort(), Object.keys(files).sort());
  for (const [name, data] of Object.entries(files)) assert.ok(readFileSync(join(dir, name)).equals(data), name);
}

describe('model: ustar directory bundles', () => {
  const work = mkdtempSync(join(tmpdir(), 'fedtune-bundle-'));
  const { dir, files } = sourceDir();
  const names = Object.keys(files);
  const ours = join(work, 'ours.tar');
  const written = writeUstarBundle(ours, entries(dir, [...names].reverse()));

  it('writes sorted entries in the ustar layout: a header per file, data padded to 512, two zero blocks', () => {
    const sizes = Object.values(files).map((b) => b.length);
    const expected = sizes.reduce((a, n) => a + 512 + Math.ceil(n / 512) * 512, 0) + 1024;
    const bytes = readFileSync(ours);
    assert.equal(bytes.length, expected);
    assert.equal(written.size, expected);
    assert.equal(written.sha256, sha(bytes));
    assert.deepEqual(written.files, [...names].sort());
    for (const [name, data] of Object.entries(files)) assert.equal(written.fileSha256.get(name), sha(data));
    // the same files in another order give the same bytes
    const again = join(work, 'again.tar');
    writeUstarBundle(again, entries(dir, names));
    assert.ok(readFileSync(again).equals(bytes));
  });

  it('GNU tar lists it as regular 0644 files of uid/gid 0 at the epoch, and extracts it identically', () => {
    const listing = tar(['--numeric-owner', '--utc', '-tvf', ours]).trim().split('\n');
    assert.deepEqual(listing.map((l) => l.split(/\s+/).pop()), [...names].sort());
    for (const l of listing) assert.match(l, /^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00 /);
    const out = join(work, 'by-tar');
    mkdirSync(out);
    tar(['-xf', ours, '-C', out]);
    assertSameFiles(out, files);
  });

  it('round trip: reads its own bundle back to the same files and hashes', () => {
    const out = join(work, 'by-us');
    const got = extractUstarBundle(ours, out);
    assertSameFiles(out, files);
    assert.deepEqual(got.files, [...names].sort());
    assert.equal(got.dataBytes, Object.values(files).reduce((a, b) => a + b.length, 0));
    for (const [name, data] of Object.entries(files)) assert.equal(got.fileSha256.get(name), sha(data));
  });

  it('reads an archive GNU tar wrote with --format=ustar (padded to a 10240-byte record)', () => {
    const theirs = join(work, 'theirs.tar');
    tar(['--format=ustar', '-cf', theirs, ...names], dir);
    assert.equal(statSync(theirs).size % 10240, 0);
    const out = join(work, 'theirs-by-us');
    const got = extractUstarBundle(theirs, out);
    assertSameFiles(out, files);
    assert.deepEqual(got.files, names); // archive order is tar's command-line order
  });

  it('refuses a name it cannot write, a duplicate, and a destination that exists', () => {
    for (const bad of ['../x', '/etc/x', 'a/b', '', '..', 'x'.repeat(101)]) {
      assert.throws(() => writeUstarBundle(join(work, 'bad.tar'), [{ name: bad, path: join(dir, 'config.json') }]), RangeError, bad);
    }
    assert.throws(() => writeUstarBundle(join(work, 'bad.tar'), entries(dir, ['config.json', 'config.json'])), /twice/);
    const existing = mkdtempSync(join(work, 'existing-'));
    writeFileSync(join(existing, 'keep'), 'mine');
    assert.throws(() => extractUstarBundle(ours, existing), /EEXIST/);
    assert.equal(readFileSync(join(existing, 'keep'), 'utf8'), 'mine');
  });

  describe('hostile archives are refused, leaving nothing behind', () => {
    const evil = mkdtempSync(join(tmpdir(), 'fedtune-evil-'));
    // `victim` is where a traversal would land; the archive is extracted into `arena/out`
    const arena = join(evil, 'arena');
    const inner = join(evil, 'inner');
    mkdirSync(arena);
    mkdirSync(inner);
    writeFileSync(join(evil, 'victim'), 'outside');
    writeFileSync(join(inner, 'a'), 'hello');
    writeFileSync(join(inner, 'b'), 'other');
    symlinkSync('/etc/passwd', join(inner, 'link'));

    const refuse = (path: string, why: RegExp, maxBytes?: number) => {
      const out = join(arena, 'out');
      const before = readdirSync(evil).sort();
      assert.throws(() => extractUstarBundle(path, out, { maxBytes }), (e: unknown) => e instanceof ModelFormatError && why.test(e.message) && e.message.includes(path), why.source);
      assert.ok(!existsSync(out), 'the target directory is removed');
      assert.deepEqual(readdirSync(arena), []);
      assert.deepEqual(readdirSync(evil).sort(), before);
      assert.equal(readFileSync(join(evil, 'victim'), 'utf8'), 'outside');
    };

    it('a traversal name ../victim (tar -P)', () => {
      const p = join(evil, 'trav.tar');
      tar(['--format=ustar', '-P', '-cf', p, 'a', '../victim'], inner);
      assert.match(tar(['-tf', p]), /\.\.\/victim/);
      refuse(p, /path traversal/);
    });

    it('an absolute name (tar -P)', () => {
      const p = join(evil, 'abs.tar');
      tar(['--format=ustar', '-P', '-cf', p, join(inner, 'a')]);
      refuse(p, /absolute name/);
    });

    it('a symbolic link, a directory and a hard link', () => {
      const sym = join(evil, 'sym.tar');
      tar(['--format=ustar', '-cf', sym, 'a', 'link'], inner);
      refuse(sym, /"link" is a symbolic link, not a regular file/);
      const dirTar = join(evil, 'dir.tar');
      tar(['--format=ustar', '-cf', dirTar, 'inner'], evil);
      refuse(dirTar, /is a directory, not a regular file/);
      const hard = join(evil, 'hard.tar');
      tar(['--format=ustar', '-cf', hard, 'a', 'a'], inner);
      refuse(hard, /is a hard link/);
    });

    it('the same name twice', () => {
      const p = join(evil, 'dup.tar');
      tar(['--format=ustar', '-cf', p, 'a'], inner);
      tar(['--format=ustar', '--transform=s/^b$/a/', '-rf', p, 'b'], inner);
      assert.deepEqual(tar(['-tf', p]).trim().split('\n'), ['a', 'a']);
      refuse(p, /holds "a" twice/);
    });

    it('truncated inside an entry, or before its end marker', () => {
      const cut = join(evil, 'cut.tar');
      writeFileSync(cut, readFileSync(ours).subarray(0, 512 + 100));
      refuse(cut, /truncated/);
      const noEnd = join(evil, 'no-end.tar');
      writeFileSync(noEnd, readFileSync(ours).subarray(0, written.size - 1024));
      refuse(noEnd, /truncated/);
      const half = join(evil, 'half-end.tar');
      writeFileSync(half, readFileSync(ours));
      truncateSync(half, written.size - 512);
      refuse(half, /truncated/);
    });

    it('files larger than the announced size', () => {
      refuse(ours, /past the \d+ bytes announced/, written.dataBytes - 1);
      assert.equal(extractUstarBundle(ours, join(evil, 'exact-size'), { maxBytes: written.dataBytes }).dataBytes, written.dataBytes);
    });

    it('data after the end marker, a damaged header, and a pre-POSIX header', () => {
      const trailing = join(evil, 'trailing.tar');
      writeFileSync(trailing, readFileSync(ours));
      appendFileSync(trailing, 'garbage');
      refuse(trailing, /data after its end marker/);
      const damaged = join(evil, 'damaged.tar');
      const d = Buffer.from(readFileSync(ours));
      d[3] ^= 1; // inside the first name
      writeFileSync(damaged, d);
      refuse(damaged, /bad checksum/);
      const v7 = join(evil, 'v7.tar');
      tar(['--format=v7', '-cf', v7, 'a'], inner);
      refuse(v7, /not a POSIX ustar header/);
    });
  });
});
