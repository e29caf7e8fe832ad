/**
 * Signed releases end to end over real gRPC: a real coordinator publishes a signed release with
 * every version; a device behind a hostile proxy (tampered adapter bytes, a manifest signed by
 * another key, a manifest for another base, a replayed older manifest, a truncated download, a
 * changed release key) refuses each with its sentence and keeps using its last verified version;
 * pin and rollback work offline; a program's signed rollback is accepted and a replay past it is not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { Device, ReleaseKeeper, type DeviceEvent } from '../../client/index.js';
import { encodeManifest, parseManifest, ReleaseError, signManifest } from '../../proto/release.js';
import { rollbackManifest, startCoordinator, submitRelease, type RunningCoordinator } from '../../server/index.js';
import { corpus } from '../helpers.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';
import { startProxy, type Proxy } from './release-proxy.js';

const PROGRAM = 'rel';

describe('signed adapter releases, device ↔ coordinator over gRPC', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-rel-'));
  const dataDir = join(dir, 'device');
  const coordDir = join(dir, 'coord');
  let running: RunningCoordinator;
  let proxy: Proxy;
  const text = corpus('wizard-of-oz.txt').slice(0, 20_000);
  const device = (address: string, over: Record<string, unknown> = {}) => new Device({ address, programId: PROGRAM, dataDir, enrolmentToken: TOKEN, text: [text], seed: 1, maxWaitMs: 200, ...over });
  type Release = { manifest: Buffer; signature: Buffer };
  /** Run a device until it refuses a release (or ends); the refusal sentences and its summary. */
  async function runUntilRefused(address: string): Promise<{ refused: string[]; error?: Error }> {
    const d = device(address);
    const refused: string[] = [];
    const ac = new AbortController();
    d.progress$.subscribe((e: DeviceEvent) => {
      if (e.kind === 'release-refused') {
        refused.push(e.reason);
        ac.abort();
      }
    });
    try {
      await d.run(ac.signal);
      return { refused };
    } catch (e) {
      return { refused, error: e as Error };
    } finally {
      d.close();
    }
  }

  before(async () => {
    running = await startCoordinator({
      dataDir: coordDir,
      port: 0,
      releaseInboxPollMs: 100,
      programs: [smallProgram(PROGRAM, { cohortSize: 1, minUpdates: 1, minContributors: 1, rounds: 2, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2, quant: 'int8' } })],
    });
    proxy = await startProxy(running.address);
  });
  after(async () => {
    await proxy?.close();
    await running?.shutdown(1000);
  });

  it('a device takes part, applying only verified releases, and keeps them', async () => {
    const d = device(running.address);
    const releases: number[] = [];
    d.progress$.subscribe((e) => e.kind === 'release' && releases.push(e.version));
    const s = await d.run();
    d.close();
    assert.equal(s.updatesAccepted, 2);
    assert.deepEqual(releases, [0, 1], 'version 0 at the start, version 1 for round 2');
    const all = await running.coordinator.store.releases(PROGRAM);
    assert.deepEqual(all.map((r) => [r.sequence, r.version, r.kind]), [[1, 0, 'version'], [2, 1, 'version'], [3, 2, 'version']]);
    const m = parseManifest(all[2].manifest);
    assert.equal(m.round, 2);
    assert.equal(m.aggregation, 'fedavg');
    assert.equal(m.baseSha256, running.coordinator.program(PROGRAM).base.sha256);
    assert.equal(m.adapterSha256, (await running.coordinator.store.version(PROGRAM, 2))?.sha256);
    assert.equal(new ReleaseKeeper(dataDir, PROGRAM).active()?.version, 1);
  });

  const current = (): Release => {
    const r = running.coordinator.program(PROGRAM).releases.all().pop();
    return { manifest: Buffer.from(r!.manifest), signature: Buffer.from(r!.signature) };
  };
  const adapterOf = async (version: number): Promise<Uint8Array> => {
    const v = (await running.coordinator.store.version(PROGRAM, version))!;
    return Buffer.concat([...running.coordinator.blobs.readChunks(v.sha256)].map((c) => c.data));
  };
  /** The proxy answers GetProgram with this release and this adapter (served by the proxy). */
  function hostile(release: Release, adapter: Uint8Array): void {
    const sha = proxy.serve(adapter);
    proxy.rules.unary = (method, res) => (method === 'GetProgram' ? { ...res, release, adapter: { sha256: sha, sizeBytes: adapter.length, format: 'fedtune-lora' } } : res);
  }
  const keptVersion = () => new ReleaseKeeper(dataDir, PROGRAM).active()?.version;

  it('refuses tampered adapter bytes, keeping version 1', async () => {
    const bytes = Uint8Array.from(await adapterOf(2));
    bytes[bytes.length - 5] ^= 0x10;
    hostile(current(), bytes);
    const r = await runUntilRefused(proxy.address);
    assert.match(r.refused[0], /^the adapter's bytes \(\d+ bytes, SHA-256 [0-9a-f]{12}…\) are not the \d+ bytes with SHA-256 [0-9a-f]{12}… that release 3 names$/);
    assert.equal(keptVersion(), 1);
  });

  it('refuses a truncated download, keeping version 1', async () => {
    const bytes = await adapterOf(2);
    hostile(current(), bytes.subarray(0, bytes.length - 100));
    const r = await runUntilRefused(proxy.address);
    assert.match(r.refused[0], new RegExp(`\\(${bytes.length - 100} bytes, .* are not the ${bytes.length} bytes`));
    assert.equal(keptVersion(), 1);
  });

  it('refuses a manifest signed by another key, keeping version 1', async () => {
    const other = nacl.sign.keyPair();
    const rel = current();
    hostile({ manifest: rel.manifest, signature: Buffer.from(signManifest(rel.manifest, other.secretKey)) }, (await adapterOf(2)));
    const r = await runUntilRefused(proxy.address);
    assert.match(r.refused[0], /^the release manifest's signature does not verify with the release key [0-9a-f]{12}…$/);
    assert.equal(keptVersion(), 1);
  });

  it('refuses a manifest for another base (even signed by the release key), keeping version 1', async () => {
    const key = (await running.coordinator.store.releaseKey(PROGRAM))!.secretKey!;
    const m = parseManifest(current().manifest);
    const other = Buffer.from(encodeManifest({ ...m, sequence: 9, baseSha256: 'e'.repeat(64) }));
    hostile({ manifest: other, signature: Buffer.from(signManifest(other, key)) }, (await adapterOf(2)));
    const r = await runUntilRefused(proxy.address);
    assert.match(r.refused[0], /^release 9 \(version 2\) is for base eeeeeeeeeeee…, not this device's base [0-9a-f]{12}…$/);
    assert.equal(keptVersion(), 1);
  });

  it('refuses a replayed older manifest (a downgrade), keeping version 1', async () => {
    const first = (await running.coordinator.store.releases(PROGRAM))[0];
    hostile({ manifest: Buffer.from(first.manifest), signature: Buffer.from(first.signature) }, (await adapterOf(0)));
    const r = await runUntilRefused(proxy.address);
    assert.equal(r.refused[0], 'release 1 (version 0) is older than release 2 this device already accepted: a downgrade is refused');
    assert.equal(keptVersion(), 1);
  });

  it('refuses a changed release key outright', async () => {
    proxy.rules.unary = (method, res) => (method === 'GetProgram' ? { ...res, releasePublicKey: Buffer.from(nacl.sign.keyPair().publicKey) } : res);
    const r = await runUntilRefused(proxy.address);
    assert.ok(r.error instanceof ReleaseError);
    assert.match(r.error.message, /gives release key [0-9a-f]{12}…, but this device pinned [0-9a-f]{12}… for program rel and never accepts a changed key/);
    assert.equal(keptVersion(), 1);
  });

  it('takes the honest release, pins and rolls back offline, then follows a signed program rollback and refuses a replay past it', async () => {
    proxy.rules.unary = undefined;
    const r = await runUntilRefused(proxy.address);
    assert.deepEqual(r.refused, []);
    const d = device('127.0.0.1:1'); // nothing listens there: everything below is offline
    assert.equal(d.activeAdapter()?.version, 2);
    assert.deepEqual(d.keptReleases().map((k) => k.version), [0, 1, 2]);
    d.pin(0);
    assert.equal(d.activeAdapter()?.version, 0);
    assert.equal(d.activeAdapter()?.pinned, true);
    d.unpin();
    assert.equal(d.rollback(), 1);
    assert.equal(d.activeAdapter()?.version, 1);
    assert.throws(() => d.pin(7), /version 7 is not among this device's verified releases \(0, 1, 2\)/);
    d.unpin();
    d.close();
    // the program rolls back to version 1: a release with kind "rollback" and the next sequence
    submitRelease(coordDir, { manifest: rollbackManifest(coordDir, PROGRAM, 1), signature: new Uint8Array(0) });
    const settled = await running.coordinator.processReleaseInbox();
    assert.equal(settled.published.length, 1, JSON.stringify(settled));
    const back = await runUntilRefused(proxy.address);
    assert.deepEqual(back.refused, []);
    const active = new ReleaseKeeper(dataDir, PROGRAM).active();
    assert.equal(active?.version, 1);
    assert.equal(active?.manifest.kind, 'rollback');
    assert.equal(active?.manifest.sequence, 4);
    // version 2's release (sequence 3) replayed after the rollback is a downgrade
    const v2 = (await running.coordinator.store.releases(PROGRAM))[2];
    hostile({ manifest: Buffer.from(v2.manifest), signature: Buffer.from(v2.signature) }, (await adapterOf(2)));
    const replay = await runUntilRefused(proxy.address);
    assert.equal(replay.refused[0], 'release 3 (version 2) is older than release 4 this device already accepted: a downgrade is refused');
    assert.equal(keptVersion(), 1);
  });
});
