import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceSummary } from '../../client/index.js';
import { secAggShape, startCoordinator, type RoundEventRecord, type RunningCoordinator } from '../../server/index.js';
import { runDevicesSettled, smallProgram } from './fixtures.js';

describe('secure aggregation over gRPC (SecAgg+ stages through the coordinator)', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-secagg-'));
  const common = { lora: { rank: 2, targets: ['wq', 'wv'], seed: 4 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 }, overSelect: 1, rounds: 1, dp: { clipNorm: 0.5 } };
  let running: RunningCoordinator;

  before(async () => {
    running = await startCoordinator({
      dataDir: dir,
      port: 0,
      programs: [
        smallProgram('sa', { ...common, cohortSize: 5, minUpdates: 3, secagg: { phaseTimeoutMs: 8000 } }),
        smallProgram('plain', { ...common, cohortSize: 4, minUpdates: 4 }),
      ],
    });
  });
  after(() => running.shutdown(500));

  /** Devices i in `ids` on a program; device `drop` aborts right after sharing its keys. */
  const run = (programId: string, ids: number[], drop?: number) =>
    runDevicesSettled({
      address: running.address,
      programId,
      dir,
      ids,
      shardChars: 12_000,
      options: (i) => ({ seed: 100 + i, maxWaitMs: 100 }),
      watch: (d, i, abort) => d.progress$.subscribe((e) => i === drop && e.kind === 'secagg' && e.stage === 'shared' && abort()),
    });

  it('the coordinator learns the survivors’ sum exactly (= plain FedAvg of the same updates), with a device dropping after key sharing', async () => {
    const events: RoundEventRecord[] = [];
    running.coordinator.program('sa').runner.events$.subscribe((e) => events.push(e));
    const sa = await run('sa', [0, 1, 2, 3, 4], 4);
    const ok = sa.filter((r): r is PromiseFulfilledResult<DeviceSummary> => r.status === 'fulfilled').map((r) => r.value);
    assert.equal(ok.length, 4, JSON.stringify(sa.map((r) => r.status)));
    assert.ok(ok.every((s) => s.updatesAccepted === 1));
    const done = events.find((e) => e.state === 'COMPLETED');
    assert.ok(done, JSON.stringify(events.map((e) => e.message)));
    assert.equal(done.updatesReceived, 4);
    // the same four devices (same seeds, same text, same initial adapter) on a plain FedAvg program
    const plain = await run('plain', [0, 1, 2, 3]);
    assert.ok(plain.every((r) => r.status === 'fulfilled'));
    const a = running.coordinator.program('sa').runner.current().global;
    const b = running.coordinator.program('plain').runner.current().global;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
      moved = Math.max(moved, Math.abs(b[i]));
    }
    assert.ok(moved > 1e-4, 'the round changed the adapter');
    assert.ok(worst < 1e-6, `secure and plain aggregates differ by ${worst}`);
  });

  it('chooses k and t so a round survives 30% dropout with 99% probability (k/2 < t ≤ k, k ≤ n − 1, even)', () => {
    // the tail P(Bin(k, 0.7) < t), computed here by direct summation of exact terms
    const below = (k: number, t: number): number => {
      let sum = 0;
      for (let x = 0; x < t; x++) {
        let c = 1;
        for (let j = 0; j < x; j++) c = (c * (k - j)) / (j + 1);
        sum += c * 0.7 ** x * 0.3 ** (k - x);
      }
      return sum;
    };
    for (const n of [3, 4, 10, 57, 100, 500]) {
      const { k, t } = secAggShape(n);
      assert.ok(k % 2 === 0 && k <= n - 1 && k / 2 < t && t <= k, `n ${n}: k ${k} t ${t}`);
      if (k < n - 2) {
        assert.ok(n * below(k, t) <= 0.01, `n ${n}: k ${k} fails too often`);
        assert.ok(n * below(k - 2, Math.floor((k - 2) / 2) + 1) > 0.01, `n ${n}: k ${k} is not the smallest`);
      }
    }
    assert.deepEqual(secAggShape(500, 20), { k: 20, t: 11 });
  });
});
