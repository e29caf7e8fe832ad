import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '../../client/index.js';
import { BOX_NONCE_BYTES, BOX_OVERHEAD_BYTES } from '../../privacy/box.js';
import { encodedUpdateBytes } from '../../proto/index.js';
import { SignFlippingDevice } from '../../sim/attacker-device.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { flatLayout } from '../../model/adapter-flat.js';
import { runDevices, smallProgram } from './fixtures.js';

function l2(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s);
}

describe('server: per-program compression, FFA-LoRA, exact ΔW and robust aggregation, end to end', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-strat-'));
  const training = { steps: 3, batchSize: 2, seqLen: 32, lr: 1e-2 };
  let running: RunningCoordinator;

  before(async () => {
    running = await startCoordinator({
      dataDir: dir,
      port: 0,
      programs: [
        smallProgram('ffa-q4', { lora: { rank: 4, targets: ['wq', 'wv'], freezeA: true, seed: 2 }, compression: 'q4', cohortSize: 2, minUpdates: 2, rounds: 1, training, dp: { clipNorm: 0.5 } }),
        smallProgram('exact', { aggregation: 'exact-dw', cohortSize: 2, minUpdates: 2, rounds: 1, training }),
        smallProgram('mixed', { aggregation: 'exact-dw', lora: { rank: 4, alpha: 8, targets: ['wq', 'wv'], seed: 6 }, cohortSize: 2, minUpdates: 2, rounds: 1, training }),
        smallProgram('avg-attacked', { cohortSize: 3, minUpdates: 3, rounds: 1, training }),
        smallProgram('median-attacked', { robust: { rule: 'median' }, cohortSize: 3, minUpdates: 3, rounds: 1, training }),
      ],
    });
  });
  after(() => running.shutdown(500));

  /** n devices; device i sends −attackScale(i) × its update when that is set. */
  const run = (programId: string, n: number, attackScale?: (i: number) => number | undefined) =>
    runDevices({
      address: running.address,
      programId,
      dir,
      ids: Array.from({ length: n }, (_, i) => i),
      shardChars: 15_000,
      options: (i) => ({ seed: 7 + i }),
      make: (options, i) => {
        const scale = attackScale?.(i);
        return scale === undefined ? new Device(options) : new SignFlippingDevice(options, scale);
      },
    });

  it('FFA-LoRA with q4 compression sends only B, quantized, and the coordinator counts the smaller bytes', async () => {
    const p = running.coordinator.program('ffa-q4');
    const initial = p.runner.current().global;
    const sums = await run('ffa-q4', 2);
    assert.ok(p.updateLength < p.flatLength / 2, `${p.updateLength} of ${p.flatLength}`);
    const want = BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES + encodedUpdateBytes('q4', p.updateLength);
    for (const s of sums) {
      assert.equal(s.updatesAccepted, 1);
      assert.equal(s.bytesUp, want);
    }
    assert.ok(want < (4 * p.flatLength) / 6, `q4 + FFA: ${want} bytes vs ${4 * p.flatLength} for f32 A and B`);
    // A did not move (bit for bit); B did
    assert.equal((await running.coordinator.store.rounds('ffa-q4'))[0].state, 'completed');
    const final = p.runner.current().global;
    assert.equal(p.runner.current().version, 1);
    const { segments, length } = flatLayout(p.base.config, p.spec.lora);
    assert.equal(length, final.length);
    let bMoved = 0;
    for (const s of segments) {
      const a = [s.aOffset, s.aOffset + s.inDim * p.spec.lora.rank] as const;
      const b = [s.bOffset, s.bOffset + s.outDim * p.spec.lora.rank] as const;
      assert.deepEqual(final.subarray(...a), initial.subarray(...a), `layer ${s.layer} ${s.name}: A moved`);
      assert.ok(initial.subarray(...a).some((v) => v !== 0), 'A starts non-zero (the comparison means something)');
      for (let i = b[0]; i < b[1]; i++) bMoved = Math.max(bMoved, Math.abs(final[i] - initial[i]));
    }
    assert.ok(bMoved > 0, 'B moved');
    assert.throws(() => running.coordinator.sealedBytes(p, 'f32'), /takes "q4" updates/);
  });

  it('exact ΔW runs a round through the gRPC path', async () => {
    const sums = await run('exact', 2);
    assert.deepEqual(sums.map((s) => s.updatesAccepted), [1, 1]);
    assert.equal(running.coordinator.program('exact').runner.current().version, 1);
  });

  it('a ×(−100) sign-flipping device drags FedAvg far away; the coordinate median ignores it', async () => {
    const attack = (i: number) => (i === 2 ? 100 : undefined);
    const moved: Record<string, number> = {};
    for (const id of ['avg-attacked', 'median-attacked']) {
      const p = running.coordinator.program(id);
      const before = p.runner.current().global;
      await run(id, 3, attack);
      const after = p.runner.current().global;
      moved[id] = l2(after.map((v, i) => v - before[i]));
    }
    assert.ok(moved['avg-attacked'] > 10 * moved['median-attacked'], JSON.stringify(moved));
  });

  it('heterogeneous ranks: a rank-2 device and rank-4 devices aggregate into the rank-4 adapter (exact ΔW)', async () => {
    const sums = await runDevices({ address: running.address, programId: 'mixed', dir, ids: [0, 1], shardChars: 15_000, options: (i) => ({ seed: 20 + i, maxRank: i === 0 ? 2 : undefined }) });
    assert.deepEqual(sums.map((s) => s.updatesAccepted), [1, 1]);
    const p = running.coordinator.program('mixed');
    assert.equal(p.runner.current().version, 1);
    assert.throws(() => new Device({ address: 'x:1', programId: 'p', dataDir: join(dir, 'bad'), enrolmentToken: 'tokentoken', text: [''], maxRank: 0 }), /maxRank must be a positive integer/);
  });
});
