import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { authFor } from '../../../client/rpc.js';
import { signedMessage } from '../../../privacy/sign.js';
import { signingPayload } from '../../../proto/signing.js';
import { deriveDeviceKeys, populationAuth, PopulationIdentities } from '../../../sim/population/identities.js';

describe('sim/population/identities', () => {
  it('derives each device its own keys, equal to what tweetnacl makes from the same seed and secret', () => {
    const master = nacl.randomBytes(32);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const k = deriveDeviceKeys(master, i);
      const sign = nacl.sign.keyPair.fromSeed(k.sign.secretKey.subarray(0, 32));
      const box = nacl.box.keyPair.fromSecretKey(k.box.secretKey);
      assert.deepEqual(k.sign.publicKey, sign.publicKey);
      assert.deepEqual(k.sign.secretKey, sign.secretKey);
      assert.deepEqual(k.box.publicKey, box.publicKey);
      // the key signs verifiably
      const msg = new TextEncoder().encode(`device ${i}`);
      assert.ok(nacl.sign.detached.verify(msg, nacl.sign.detached(msg, k.sign.secretKey), k.sign.publicKey));
      seen.add(Buffer.from(k.sign.publicKey).toString('hex'));
    }
    assert.equal(seen.size, 20);
    assert.throws(() => deriveDeviceKeys(new Uint8Array(31), 0), TypeError);
    assert.throws(() => deriveDeviceKeys(master, -1), RangeError);
  });

  it('populationAuth signs exactly what authFor signs with the device keys, and tweetnacl verifies it', () => {
    const master = nacl.randomBytes(32);
    const req = { programId: 'p1', adapterVersion: 3 };
    const method = 'fedtune.v1.Coordinator/CheckIn';
    for (const i of [0, 7, 12345]) {
      const keys = deriveDeviceKeys(master, i);
      const nonce = Buffer.from(nacl.randomBytes(16)).toString('hex');
      const mine = populationAuth(master, i, `dev-${i}`, method, req, 'p1', 1_700_000_000_000, nonce);
      const ref = authFor(method, req, `dev-${i}`, keys.sign, { programId: 'p1', now: 1_700_000_000_000, nonce });
      assert.deepEqual(new Uint8Array(mine.signature), new Uint8Array(ref.signature as Uint8Array));
      assert.deepEqual({ ...mine, signature: 0 }, { ...ref, signature: 0 });
      const msg = signedMessage({ method: `/${method}`, programId: 'p1' }, `dev-${i}`, nonce, 1_700_000_000_000, signingPayload(method, req));
      assert.ok(nacl.sign.detached.verify(msg, new Uint8Array(mine.signature), keys.sign.publicKey));
      // another device's key does not verify
      assert.ok(!nacl.sign.detached.verify(msg, new Uint8Array(mine.signature), deriveDeviceKeys(master, i + 1).sign.publicKey));
    }
  });

  it('persists one seed file and per-program enrolments; reopening gives the same keys and ids', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-ids-'));
    const a = new PopulationIdentities(dir, 100);
    a.record('p1', [
      [3, 'dev-a'],
      [7, 'dev-b'],
    ]);
    a.record('p2', [[3, 'dev-c']]);
    const b = new PopulationIdentities(dir, 100);
    assert.deepEqual(b.master, a.master);
    assert.equal(b.deviceId('p1', 3), 'dev-a');
    assert.equal(b.deviceId('p1', 7), 'dev-b');
    assert.equal(b.deviceId('p2', 3), 'dev-c');
    assert.equal(b.deviceId('p2', 7), '');
    assert.equal(b.enrolledCount('p1'), 2);
    assert.deepEqual(deriveDeviceKeys(b.master, 5).sign.publicKey, deriveDeviceKeys(a.master, 5).sign.publicKey);
    assert.throws(() => a.record('p1', [[100, 'x']]), RangeError);
  });
});
