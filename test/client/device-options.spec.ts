import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { Device } from '../../client/index.js';

describe('client/device: options a host (a simulated fleet) sets', () => {
  const base = (dataDir: string) => ({ address: '127.0.0.1:1', programId: 'p', dataDir, enrolmentToken: 'token-123', text: ['hello'] });

  it('an identity store keeps keys out of the data dir; misuse is refused naming the option', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-devopt-'));
    const saved: unknown[] = [];
    const d = new Device({ ...base(dir), identity: { identity: { sign: nacl.sign.keyPair(), box: nacl.box.keyPair(), enrolments: {} }, saveEnrolment: (_p, e) => saved.push(e) } });
    d.close();
    assert.equal(existsSync(join(dir, 'identity.json')), false);
    assert.throws(() => new Device({ ...base(dir), maxCheckIns: 0 }), /options\.maxCheckIns/);
    assert.throws(() => new Device({ ...base(dir), model: { sha256: 'x' } as never }), /options\.model/);
  });
});
