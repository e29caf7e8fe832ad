import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet, populationProgram } from '../../../sim/population/index.js';
import { maxAbsDiff } from '../../helpers.js';

describe('sim/population: batched training in a fleet round', function () {
  this.timeout(300_000);

  it('publishes the same adapter whether the sampled devices train one at a time or batched into one tensor program', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-fleet-batch-'));
    const N = 16;
    // two identical programs but for their ids (same initial adapter, same devices, same seeds);
    // q = 1 without DP: every online device is sampled, so both rounds draw the same devices
    const solo = populationProgram('solo', { population: N, cohort: N, rounds: 1 });
    const batched = populationProgram('batched', { population: N, cohort: N, rounds: 1 });
    const fleet = await Fleet.start({ programs: [solo.spec, batched.spec], population: N, outDir: dir, threads: 1, concurrency: 8, batch: 8, evalTokens: 64, online: 1, onlineSpread: 0, dropout: 0, seed: 5 });
    try {
      await fleet.enrol('solo');
      await fleet.enrol('batched');
      const initial = fleet.running.coordinator.program('solo').runner.current().global.slice();
      const a = await fleet.runRound('solo', undefined, { batch: 1 });
      const b = await fleet.runRound('batched', undefined, { batch: 8 });
      assert.ok(a && b);
      assert.equal(a.state, 'COMPLETED');
      assert.equal(b.state, 'COMPLETED');
      assert.equal(a.counts.uploaded, a.sampled);
      assert.equal(b.counts.uploaded, b.sampled);
      assert.equal(a.sampled, N);
      assert.equal(b.sampled, N);
      // the one-at-a-time round trained no cohort; the batched one trained its devices in cohorts of several
      assert.equal(a.batched.runs, 0);
      assert.equal(b.batched.runs, b.sampled);
      assert.ok(b.batched.largest > 1 && b.batched.cohorts < b.sampled, JSON.stringify(b.batched));
      // each device's update before clipping: the same multiset of norms
      const sorted = (x: readonly number[]): number[] => [...x].sort((p, q) => p - q);
      assert.ok(maxAbsDiff(Float32Array.from(sorted(a.norms)), Float32Array.from(sorted(b.norms))) <= 1e-6);
      const ga = fleet.running.coordinator.program('solo').runner.current().global;
      const gb = fleet.running.coordinator.program('batched').runner.current().global;
      // the round moved the adapter (a vacuous comparison would pass too)
      assert.ok(maxAbsDiff(ga, initial) > 1e-4, `the solo round changed the adapter by ${maxAbsDiff(ga, initial)}`);
      // FedAvg sums in arrival order, which differs: equal within float rounding
      assert.ok(maxAbsDiff(ga, gb) <= 1e-6, `published adapters differ by ${maxAbsDiff(ga, gb)}`);
    } finally {
      await fleet.close();
    }
  });

  it('refuses bad batching options with a RangeError naming them', async () => {
    const p = populationProgram('x', { population: 4, cohort: 4, rounds: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-fleet-bad-'));
    await assert.rejects(Fleet.start({ programs: [p.spec], population: 4, outDir: dir, batch: 0 }), /Fleet.start: batch must be a positive integer/);
    await assert.rejects(Fleet.start({ programs: [p.spec], population: 4, outDir: dir, concurrency: 1.5 }), /Fleet.start: concurrency/);
    await assert.rejects(Fleet.start({ programs: [p.spec], population: 4, outDir: dir, batchLingerMs: -1 }), /Fleet.start: batchLingerMs/);
  });
});
