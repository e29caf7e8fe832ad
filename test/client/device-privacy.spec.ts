import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '../../client/index.js';
import { seededRng } from '../../random/rng.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';
import { corpus } from '../helpers.js';

/**
 * A device's privacy randomness (DP noise, stochastic rounding) must not follow from its seed:
 * round ids are public, so noise drawn from seed + round id could be recomputed and subtracted.
 * Two coordinators run the same programs (so the same round ids); on each, one device with the
 * same seed and text trains one round. Training is then identical, so the published adapters
 * differ only by the device's privacy randomness.
 */
describe('client: privacy randomness does not follow from the device seed (real coordinators)', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-devpriv-'));
  const text = corpus('wizard-of-oz.txt').slice(0, 20_000);
  const training = { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 };
  const one = { cohortSize: 1, minUpdates: 1, minContributors: 1, rounds: 1, training };
  // local DP with a bound far above the update and a small z, so the noised update stays within C
  const programs = () => [
    smallProgram('noised', { ...one, dp: { mode: 'local', clipNorm: 0.5, noiseMultiplier: 1, population: 1 } }),
    smallProgram('rounded', { ...one, compression: 'q8' }),
    smallProgram('injected', { ...one, compression: 'q8', dp: { mode: 'local', clipNorm: 0.5, noiseMultiplier: 1, population: 1 } }),
  ];
  const coordinators: RunningCoordinator[] = [];

  before(async () => {
    for (const name of ['one', 'two']) coordinators.push(await startCoordinator({ dataDir: join(dir, name), programs: programs(), port: 0 }));
  });
  after(async () => {
    for (const c of coordinators) await c.shutdown(500);
  });

  /** The adapter each coordinator publishes after one device with `seed` (and `noiseSeed`, if given) took part. */
  const publishedAfter = (programId: string, seed: number, noiseSeed?: number): Promise<Float32Array[]> =>
    Promise.all(
      coordinators.map(async (running, k) => {
        const d = new Device({ address: running.address, programId, dataDir: join(dir, `${programId}-${k}`), enrolmentToken: TOKEN, text: [text], seed, noiseRng: noiseSeed === undefined ? undefined : seededRng(noiseSeed) });
        try {
          const s = await d.run();
          assert.equal(s.updatesAccepted, 1, `${programId} on coordinator ${k}: ${JSON.stringify(s)}`);
        } finally {
          d.close();
        }
        return running.coordinator.program(programId).runner.current().global;
      }),
    );

  const differing = (a: Float32Array, b: Float32Array): number => a.reduce((n, v, i) => n + (v === b[i] ? 0 : 1), 0);

  it('an explicitly injected noise RNG reproduces the update exactly (training itself is deterministic)', async () => {
    const [a, b] = await publishedAfter('injected', 7, 99);
    assert.equal(differing(a, b), 0);
  });

  it('the same seed and round id give different DP noise', async () => {
    const [a, b] = await publishedAfter('noised', 7);
    assert.ok(differing(a, b) > a.length / 4, `only ${differing(a, b)} of ${a.length} values differ`);
  });

  it('the same seed and round id give different stochastic rounding', async () => {
    const [a, b] = await publishedAfter('rounded', 7);
    assert.ok(differing(a, b) > 0, 'the q8 roundings were identical');
  });
});
