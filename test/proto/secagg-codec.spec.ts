/** The SecAgg codec refuses what would weaken the protocol. */
import assert from 'node:assert/strict';
import { advertFromWire, WireFormatError } from '../../proto/index.js';

describe('proto/secagg-codec', () => {
  const wire = (commitment: number) => ({ id: 3, maskKey: Buffer.alloc(32, 1), shareKey: Buffer.alloc(32, 2), signature: Buffer.alloc(64, 3), selfMaskCommitment: Buffer.alloc(commitment, 4) });

  it('refuses a key advert without its 32-byte self-mask commitment (a false share at exactly t shares would go unnoticed)', () => {
    for (const n of [0, 31, 33]) assert.throws(() => advertFromWire(wire(n), 'r1'), (e: unknown) => e instanceof WireFormatError && /self_mask_commitment must be 32 bytes/.test(e.message));
    const a = advertFromWire(wire(32), 'r1');
    assert.equal(a.selfMaskCommitment?.length, 32);
    assert.equal(a.roundId, 'r1');
  });
});
