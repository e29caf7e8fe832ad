import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet, populationProgram, trainPopulation } from '../../../sim/population/index.js';

describe('sim/population: a tiny fleet through the real coordinator', function () {
  this.timeout(300_000);

  it('enrols 150 devices, runs 2 Poisson-sampled rounds through Device + gRPC on two worker threads (sharing the native addon), and idle devices hold nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-fleet-'));
    const N = 150;
    const program = populationProgram('tiny', { population: N, cohort: 8, rounds: 2, privacy: 'dp', targetEpsilon: 8 });
    const fleet = await Fleet.start({ programs: [program.spec], population: N, outDir: dir, threads: 2, concurrency: 3, evalTokens: 128, online: 0.9, dropout: 0.3, seed: 3 });
    try {
      const e = await fleet.enrol('tiny');
      assert.equal(e.devices, N);
      // every virtual device is a distinct enrolled device of the coordinator
      assert.equal(await fleet.running.coordinator.store.deviceCount('tiny'), N);
      assert.equal(new Set(Array.from({ length: N }, (_, i) => fleet.identities.deviceId('tiny', i))).size, N);
      const s = await trainPopulation(fleet, program, { outDir: join(dir, 'out'), progress: false, log: () => undefined });
      assert.equal(s.rounds.length, 2);
      // devices that drop out train but send nothing (Device aborted before its upload)
      assert.ok(s.rounds.reduce((n, r) => n + r.dropped, 0) > 0, `no device dropped out at dropout 0.3: ${JSON.stringify(s.rounds.map(({ domains: _d, ...r }) => r))}`);
      for (const r of s.rounds) {
        assert.ok(r.updates >= 2 && r.updates <= r.sampled, JSON.stringify(r));
        assert.equal(r.errors, 0);
        // every online device checked in once; the coordinator sampled some, the rest got a ComeBack
        assert.equal(r.updates + r.dropped, r.sampled);
        assert.equal(r.sampled + r.notSelected, r.checkIns);
      }
      // the ledger charged two rounds at the program's q and ε stays within the target
      assert.ok(s.epsilon > 0 && s.epsilon <= 8 + 1e-6, `ε ${s.epsilon}`);
      assert.notEqual(s.final.mean, s.baseOnly.mean);
      assert.ok(existsSync(s.summaryPath) && existsSync(s.plotPath));
      // idle devices: no per-device state on disk (only the worker's reusable slots), a few bytes in memory
      const scratch = readdirSync(join(dir, 'scratch', 'w0'));
      assert.ok(scratch.every((d) => /^(s\d+|enrol-tiny)$/.test(d)) && scratch.length <= 4, scratch.join(','));
      assert.ok(fleet.tableBytes() / N < 200, `${fleet.tableBytes() / N} bytes per idle device`);
    } finally {
      await fleet.close();
    }
  });
});
