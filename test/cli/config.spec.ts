/** `fedtune config check FILE` as a user runs it: a summary per program, or every problem with its path. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL } from '../helpers.js';
import { fedtune, fedtuneWith, NO_TFJS } from './run-fedtune.js';

describe('cli: fedtune config check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-config-'));
  const write = (name: string, body: unknown): string => {
    writeFileSync(join(dir, name), JSON.stringify(body, null, 1));
    return join(dir, name);
  };
  const program = { id: 'oz', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: 'partner-secret' };

  it('a valid file: exit 0, one summary line per program, without loading TensorFlow.js', () => {
    const file = write('good.json', {
      programs: [program, { id: 'dp', base: MODEL.gguf, enrolmentToken: 'partner-secret', cohortSize: 20, rounds: 3, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1.1, population: 5000, epsilonBudget: 8 } }],
    });
    const r = fedtuneWith(NO_TFJS, 'config', 'check', file);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0], /^oz: base stories260K\.bin \+ tok512\.bin; .*10 rounds of cohort 10 .*no DP/);
    assert.match(lines[1], /^dp: base stories260K\.gguf; .*3 rounds of cohort 20 \(≥ 10 updates, ≥ 10 contributors\), Poisson sampling at q 0\.00400 over \d+ ms.*central DP \(C 0\.5, z 1\.1, .*ε budget 8, population 5000\)/);
  });

  it('an invalid file: exit 1, every problem on its own line naming its path', () => {
    const file = write('bad.json', { programs: [{ ...program, training: { stesp: 3 } }, { ...program, id: 'two', secagg: true, compression: 'q8', dp: { clipNorm: 1 }, cohortSize: 0 }] });
    const r = fedtune('config', 'check', file);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'programs[0].training.stesp: unknown key; did you mean "steps"?',
      'programs[1].cohortSize must be a positive integer, got 0',
      'programs[1].secagg needs plain FedAvg without robust rules or compression (the coordinator sees only the sum)',
      `fedtune config: ${file}: 3 problems`,
    ]);
  });

  it('the coordinator refuses the same file with the same sentences; usage errors exit 2', () => {
    const file = write('typo.json', { programs: [{ ...program, training: { stesp: 3 } }] });
    const r = fedtune('coordinator', '--config', file, '--port', '0', '--data', join(dir, 'data'));
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), 'fedtune coordinator: programs[0].training.stesp: unknown key; did you mean "steps"?');
    assert.equal(fedtune('config', 'check').code, 2);
    assert.equal(fedtune('config', 'lint', file).code, 2);
    const missing = fedtune('config', 'check', join(dir, 'missing.json'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^cannot read config .*missing\.json: ENOENT$/m);
  });
});
