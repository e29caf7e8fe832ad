/** Round planning: the program's strategy per round, and what its configureRound asks of devices. */
import assert from 'node:assert/strict';
import { CentralDpStrategy, DeviceDpStrategy, FedAvgStrategy } from '../../aggregators/index.js';
import { readBaseInfo, seededRng } from '../../model/index.js';
import { ADAPTER_VALUE_LIMIT, programSpec, publishRefusal, RoundPlanner } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

const config = readBaseInfo(MODEL.bin).config;
const spec = (over: Record<string, unknown>) =>
  programSpec({ id: 'p', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN, lora: { rank: 2, targets: ['wq'] }, cohortSize: 16, minContributors: 2, ...over });

describe('server/round-plan', () => {
  it('says each round’s clip norm and device noise std through the strategy’s configureRound', () => {
    const plan = (dp: Record<string, unknown>, extra: Record<string, unknown> = {}) => new RoundPlanner(spec({ dp, ...extra }), config, seededRng(1)).plan(1);
    const none = plan({});
    assert.ok(none.strategy instanceof FedAvgStrategy);
    assert.deepEqual(none.plan, { round: 1, clipNorm: 0, deviceNoiseStd: 0 });
    const clipped = plan({ clipNorm: 0.3 });
    assert.ok(clipped.strategy instanceof DeviceDpStrategy);
    assert.deepEqual(clipped.plan, { round: 1, clipNorm: 0.3, deviceNoiseStd: 0 });
    assert.equal(plan({ mode: 'local', clipNorm: 0.5, noiseMultiplier: 2, population: 100 }).plan.deviceNoiseStd, 1);
    assert.equal(plan({ mode: 'distributed', clipNorm: 0.5, noiseMultiplier: 2, population: 100 }).plan.deviceNoiseStd, 1 / 4);
    const central = plan({ mode: 'central', clipNorm: 0.5, noiseMultiplier: 2, population: 100 }, { minContributors: 10 });
    assert.ok(central.strategy instanceof CentralDpStrategy);
    assert.deepEqual(central.plan, { round: 1, clipNorm: 0.5, deviceNoiseStd: 0 });
  });

  it('adaptive clipping moves the planned C after each round and resumes where it was', () => {
    const s = spec({ dp: { clipNorm: 0.1, adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 0 } } });
    const p = new RoundPlanner(s, config, seededRng(1));
    assert.equal(p.plan(1).plan.clipNorm, 0.1);
    p.afterRound([true, true, true, true]); // all unclipped: b̄ = 1, C ← C·exp(−0.2·0.5)
    assert.ok(Math.abs(p.plan(2).plan.clipNorm - 0.1 * Math.exp(-0.1)) < 1e-12);
    assert.equal(new RoundPlanner(s, config, seededRng(1), 0.07).plan(5).plan.clipNorm, 0.07);
  });

  it('streams plain FedAvg only (not under central DP, robust rules or SecAgg)', () => {
    assert.equal(new RoundPlanner(spec({}), config, seededRng(1)).streams, true);
    assert.equal(new RoundPlanner(spec({ robust: { rule: 'median' } }), config, seededRng(1)).streams, false);
    assert.equal(new RoundPlanner(spec({ minContributors: 10, dp: { mode: 'central', clipNorm: 1, noiseMultiplier: 1, population: 20 } }), config, seededRng(1)).streams, false);
  });

  it('refuses to publish too few contributors, a non-finite or an absurd aggregate', () => {
    const ok = Float32Array.of(0.1, -0.2);
    assert.equal(publishRefusal(ok, 2, 2), undefined);
    assert.match(publishRefusal(ok, 1, 2) ?? '', /only 1 device\(s\) contributed, fewer than minContributors 2/);
    assert.match(publishRefusal(Float32Array.of(0, Infinity), 3, 2) ?? '', /non-finite value \(Infinity\) at index 1/);
    assert.match(publishRefusal(Float32Array.of(2 * ADAPTER_VALUE_LIMIT), 3, 2) ?? '', /absurd value/);
  });
});
