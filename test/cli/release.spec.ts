/**
 * `fedtune release` with a program whose release key is held offline: the coordinator opens no
 * round until a human signs version 0's release (keygen → sign → submit), `release list` reads a
 * data dir the coordinator holds, `release verify` accepts the published release with its adapter
 * and refuses another key or other bytes with one sentence, and an offline rollback must be signed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '../../server/index.js';
import { smallProgram } from '../server/fixtures.js';
import { fedtune } from './run-fedtune.js';

describe('fedtune release (offline signing)', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-relcli-'));
  const data = join(dir, 'coord');
  const key = join(dir, 'partner.key');
  let c: Coordinator | undefined;
  after(() => c?.close());

  it('keygen, then a coordinator that waits for the signature, sign, submit, list, verify', async () => {
    const gen = fedtune('release', 'keygen', '--out', key);
    assert.equal(gen.code, 0, gen.stderr);
    const pub = gen.stdout.trim();
    assert.match(pub, /^[0-9a-f]{64}$/);
    assert.equal(readFileSync(`${key}.pub`, 'utf8').trim(), pub);
    c = await Coordinator.open({ dataDir: data, programs: [smallProgram('off', { release: { signing: 'offline', publicKey: pub } })] });
    await c.start();
    const p = c.program('off');
    assert.equal(p.releases.published(), undefined);
    const later = p.runner.checkIn('dev-x');
    assert.ok('reason' in later && /awaits its offline signature/.test(later.reason), JSON.stringify(later));
    const mirror = join(data, 'releases', 'off', readdirSync(join(data, 'releases', 'off'))[0]);
    const listed = JSON.parse(fedtune('release', 'list', '--data', data, '--json').stdout) as { sequence: number; signed: boolean; version: number }[];
    assert.deepEqual(listed.map((r) => [r.sequence, r.version, r.signed]), [[1, 0, false]]);
    // an unsigned file cannot be submitted; a signed one is published
    assert.match(fedtune('release', 'submit', '--manifest', mirror, '--data', data).stderr, /is not signed; run fedtune release sign first/);
    const signed = join(dir, 'signed.release.json');
    assert.equal(fedtune('release', 'sign', '--manifest', mirror, '--key', key, '--out', signed).code, 0);
    assert.equal(fedtune('release', 'submit', '--manifest', signed, '--data', data).code, 0);
    assert.deepEqual((await c.processReleaseInbox()).published.length, 1);
    assert.equal(p.releases.published()?.sequence, 1);
    const adapter = join(data, 'blobs', (await c.store.version('off', 0))!.sha256);
    const ok = fedtune('release', 'verify', '--manifest', signed, '--adapter', adapter, '--key', `${key}.pub`, '--base', p.base.sha256);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: release 1 of program off, version of adapter version 0/);
    // another key, other bytes: exit 1 and one sentence
    const otherKey = join(dir, 'other.key');
    fedtune('release', 'keygen', '--out', otherKey);
    const bad = fedtune('release', 'verify', '--manifest', signed, '--adapter', adapter, '--key', `${otherKey}.pub`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^fedtune release: the release manifest's signature does not verify with the release key [0-9a-f]{12}…\n$/);
    const tampered = join(dir, 'tampered.safetensors');
    const bytes = readFileSync(adapter);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(tampered, bytes);
    const badBytes = fedtune('release', 'verify', '--manifest', signed, '--adapter', tampered, '--key', pub);
    assert.equal(badBytes.code, 1);
    assert.match(badBytes.stderr, /are not the \d+ bytes with SHA-256 [0-9a-f]{12}… that release 1 names\n$/);
    // an offline program's rollback must carry the offline key's signature
    fedtune('release', 'rollback', '--data', data, '--program', 'off', '--to', '0');
    const settled = await c.processReleaseInbox();
    assert.equal(settled.refused.length, 1);
    assert.match(readFileSync(join(data, 'releases', 'inbox', 'refused', `${settled.refused[0]}.why`), 'utf8'), /adapter version 0 is already the program's current version|not signed/);
  });
});
