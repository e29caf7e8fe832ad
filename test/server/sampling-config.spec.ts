/**
 * The sampling block of a program config: defaults per DP mode, and every refusal — each breaks
 * the rule (the sentence names the path and says why) and a minimal change that satisfies it passes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, checkProgramsFile, programSpec } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

type Raw = Record<string, unknown>;
const base = { id: 'p', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN };
const DP = { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 1000 };

function problems(over: Raw): string[] {
  try {
    programSpec({ ...base, ...over });
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.issues];
  }
}

function rule(over: Raw, path: string, re: RegExp, fixed: Raw): void {
  const got = problems(over);
  assert.equal(got.length, 1, got.join('\n'));
  assert.ok(got[0].startsWith(`program "p": ${path} `), got[0]);
  assert.match(got[0], re);
  assert.deepEqual(problems(fixed), [], `fixed: ${JSON.stringify(fixed)}`);
}

describe('server: the sampling config', () => {
  it('defaults: poisson at q = cohortSize / population under DP, first-come without', () => {
    const dp = programSpec({ ...base, cohortSize: 20, dp: DP, roundDeadlineMs: 8000 });
    assert.deepEqual({ ...dp.sampling }, { scheme: 'poisson', rate: 20 / 1000, selectionMs: 2000 });
    const plain = programSpec({ ...base });
    assert.equal(plain.sampling.scheme, 'first-come');
    assert.equal(plain.sampling.rate, 0);
    for (const mode of ['local', 'distributed']) assert.equal(programSpec({ ...base, cohortSize: 20, dp: { ...DP, mode } }).sampling.scheme, 'poisson');
  });

  it('the README config table shows the sampling defaults', () => {
    const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'README.md'), 'utf8');
    const row = readme.split('\n').find((l) => l.startsWith('| `sampling` | '));
    assert.ok(row, 'README has a row for sampling');
    const dp = programSpec({ ...base, cohortSize: 20, dp: DP }).sampling.scheme;
    const plain = programSpec({ ...base }).sampling.scheme;
    assert.equal(row.split(' | ')[1], `\`${dp}\` under DP, else \`${plain}\``);
  });

  it('refuses first-come under DP, saying why', () => {
    rule({ cohortSize: 20, dp: DP, sampling: { scheme: 'first-come' } }, 'sampling.scheme', /not a random sample.*amplification.*use "poisson"/, { cohortSize: 20, dp: DP, sampling: { scheme: 'poisson' } });
  });

  it('refuses fixed-cohort under DP (no honest accountant for it here), allows it without', () => {
    rule({ cohortSize: 20, dp: DP, sampling: { scheme: 'fixed-cohort' } }, 'sampling.scheme', /without replacement.*do not bound/, { cohortSize: 20, sampling: { scheme: 'fixed-cohort' } });
  });

  it('a rate must give the expected cohort cohortSize (the fixed denominator of the DP mean)', () => {
    rule({ cohortSize: 20, dp: DP, sampling: { rate: 0.05 } }, 'sampling.rate', /expected cohort of rate × dp.population = 50.00.*set cohortSize to 50/, { cohortSize: 50, dp: DP, sampling: { rate: 0.05 } });
    assert.equal(programSpec({ ...base, cohortSize: 50, dp: DP, sampling: { rate: 0.05 } }).sampling.rate, 0.05);
  });

  it('rate only for poisson, and poisson without DP needs a rate or a population', () => {
    rule({ sampling: { scheme: 'first-come', rate: 0.1 } }, 'sampling.rate', /only for sampling.scheme "poisson"/, { sampling: { scheme: 'poisson', rate: 0.1 } });
    rule({ sampling: { scheme: 'poisson' } }, 'sampling.rate', /is required/, { sampling: { scheme: 'poisson', rate: 0.5 } });
    rule({ sampling: { scheme: 'poisson', rate: 0 } }, 'sampling.rate', /must be a number in \(0, 1\]/, { sampling: { scheme: 'poisson', rate: 1 } });
  });

  it('selectionMs: not for first-come, and shorter than the deadline', () => {
    rule({ sampling: { selectionMs: 100 } }, 'sampling.selectionMs', /only for sampling.scheme "poisson" or "fixed-cohort"/, { sampling: { scheme: 'fixed-cohort', selectionMs: 100 } });
    rule({ roundDeadlineMs: 1000, sampling: { scheme: 'fixed-cohort', selectionMs: 1000 } }, 'sampling.selectionMs', /less than roundDeadlineMs/, { roundDeadlineMs: 1000, sampling: { scheme: 'fixed-cohort', selectionMs: 999 } });
  });

  it('fixed-cohort is not combined with secagg', () => {
    const secagg = { secagg: true, minUpdates: 3, dp: { clipNorm: 0.5 } };
    rule({ ...secagg, sampling: { scheme: 'fixed-cohort' } }, 'sampling.scheme', /cannot be combined with secagg/, { ...secagg, sampling: { scheme: 'poisson', rate: 0.5 } });
  });

  it('unknown keys get a suggestion; the config check (fedtune config check) explains a refusal', () => {
    assert.deepEqual(problems({ sampling: { shceme: 'poisson' } }), ['program "p": sampling.shceme: unknown key; did you mean "scheme"?']);
    const file = join(mkdtempSync(join(tmpdir(), 'fedtune-sampling-cfg-')), 'c.json');
    writeFileSync(file, JSON.stringify({ programs: [{ ...base, cohortSize: 20, dp: DP, sampling: { scheme: 'first-come' } }] }));
    const c = checkProgramsFile(file);
    assert.ok(!c.ok);
    assert.equal(c.issues.length, 1);
    assert.match(c.issues[0], /programs\[0\]\.sampling\.scheme "first-come" cannot be used with dp.mode "central": the devices that check in first are not a random sample/);
  });
});
