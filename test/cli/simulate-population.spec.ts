import assert from 'node:assert/strict';
import { simulationFlags } from '../../cli/simulate.js';

describe('fedtune simulate: population flags', () => {
  it('parses the population flags into runPopulation options, and only with --population', () => {
    const { population } = simulationFlags(['--population', '10000', '--cohort', '500', '--shards', 'dirichlet:0.3', '--online', '0.7', '--dropout', '0.1', '--epsilon', '8', '--no-adaptive-clip']);
    assert.deepEqual(population, { population: 10000, cohort: 500, shards: { kind: 'dirichlet', alpha: 0.3 }, meanChars: undefined, online: 0.7, dropout: 0.1, threads: undefined, concurrency: undefined, targetEpsilon: 8, delta: undefined, adaptiveClip: false });
    assert.equal(simulationFlags(['--devices', '5']).population, undefined);
    assert.deepEqual(simulationFlags(['--population', '50', '--shards', 'natural']).population?.shards, { kind: 'natural' });
  });

  it('refuses bad population flags with a sentence naming the flag', () => {
    assert.throws(() => simulationFlags(['--population', '100', '--shards', 'iid']), /--shards must be "natural" or "dirichlet:α"/);
    assert.throws(() => simulationFlags(['--population', '100', '--cohort', '200']), /--cohort/);
    assert.throws(() => simulationFlags(['--population', '0']), /--population/);
    assert.throws(() => simulationFlags(['--population', '100', '--online', '0']), /--online/);
  });
});
