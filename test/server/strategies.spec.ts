import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '../../client/index.js';
import { BOX_NONCE_BYTES, BOX_OVERHEAD_BYTES } from '../../privacy/box.js';
import { encodedUpdateBytes } from '../../proto/index.js';
import { SignFlippingDevice } from '../../sim/attacker-device.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { corpus } from '../helpers.js';
import { smallProgram, TOKEN } from './fixtures.js';

function l2(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s);
}

describe('server: per-program compression, FFA-LoRA, exact ΔW and robust aggregation, end to end', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-strat-'));
  const oz = corpus('wizard-of-oz.txt');
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
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const options = { address: running.address, programId, dataDir: join(dir, `${programId}-${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * 15_000, (i + 1) * 15_000)], seed: 7 + i };
        const scale = attackScale?.(i);
        const d = scale === undefined ? new Device(options) : new SignFlippingDevice(options, scale);
        try {
          return await d.run();
        } finally {
          d.close();
        }
      }),
    );

  it('FFA-LoRA with q4 compression sends only B, quantized, and the coordinator counts the smaller bytes', async () => {
    const sums = await run('ffa-q4', 2);
    const p = running.coordinator.program('ffa-q4');
    assert.ok(p.updateLength < p.flatLength / 2, `${p.updateLength} of ${p.flatLength}`);
    const want = BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES + encodedUpdateBytes('q4', p.updateLength);
    for (const s of sums) {
      assert.equal(s.updatesAccepted, 1);
      assert.equal(s.bytesUp, want);
    }
    assert.ok(want < (4 * p.flatLength) / 6, `q4 + FFA: ${want} bytes vs ${4 * p.flatLength} for f32 A and B`);
    // A did not move; B did
    const init = running.coordinator.store.rounds('ffa-q4');
    assert.equal(init[0].state, 'completed');
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
    const runMixed = (ids: number[]) =>
      Promise.all(
        ids.map(async (i) => {
          const d = new Device({ address: running.address, programId: 'mixed', dataDir: join(dir, `mixed-${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * 15_000, (i + 1) * 15_000)], seed: 20 + i, maxRank: i === 0 ? 2 : undefined });
          try {
            return await d.run();
          } finally {
            d.close();
          }
        }),
      );
    const sums = await runMixed([0, 1]);
    assert.deepEqual(sums.map((s) => s.updatesAccepted), [1, 1]);
    const p = running.coordinator.program('mixed');
    assert.equal(p.runner.current().version, 1);
    assert.throws(() => new Device({ address: 'x:1', programId: 'p', dataDir: join(dir, 'bad'), enrolmentToken: 'tokentoken', text: [''], maxRank: 0 }), /maxRank must be a positive integer/);
  });
});
