/**
 * The config schema: documented defaults, unknown keys with suggestions at every level, and
 * one test per cross-field rule — each breaks the rule (the refusal names the path) and a
 * minimal change that satisfies it passes, so the rule is neither missing nor over-broad.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, checkProgramsFile, programSpec, readProgramsFile } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

type Raw = Record<string, unknown>;
const base = { id: 'p', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN };
const spec = (over: Raw) => programSpec({ ...base, ...over });
/** Every sentence the program `over` is refused with ([] when valid). */
function problems(over: Raw): string[] {
  try {
    spec(over);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError && e instanceof RangeError, String(e));
    return [...e.issues];
  }
}
/** `over` is refused with exactly one problem, naming `path`, matching `re`; `fixed` passes. */
function rule(over: Raw, path: string, re: RegExp, fixed: Raw): void {
  const got = problems(over);
  assert.equal(got.length, 1, got.join('\n'));
  assert.ok(got[0].startsWith(`program "p": ${path} `), got[0]);
  assert.match(got[0], re);
  assert.deepEqual(problems(fixed), [], `fixed: ${JSON.stringify(fixed)}`);
}
const DP = { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 1000 };

describe('server: config schema', () => {
  it('fills the documented defaults', () => {
    const s = spec({});
    assert.deepEqual({ ...s.training }, { steps: 20, batchSize: 8, seqLen: 64, lr: 2e-3, weightDecay: 0, clipNorm: 1, timeBudgetMs: undefined, quant: 'int8', replayFraction: 0, replayTokens: 8192, proximalMu: 0, dataFormat: 'text' });
    assert.deepEqual({ ...s.lora }, { rank: 8, alpha: 16, targets: ['wq', 'wv'], dropout: 0, freezeA: false, seed: 0 });
    assert.deepEqual([s.cohortSize, s.overSelect, s.minUpdates, s.minContributors, s.maxUpdateNorm, s.roundDeadlineMs, s.rounds, s.retryDelayMs], [10, 1.3, 5, 2, 0, 600_000, 10, 2000]);
    assert.deepEqual({ ...s.dp }, { mode: 'none', clipNorm: 0, noiseMultiplier: 0, delta: 1e-5, epsilonBudget: Infinity, population: 0, adaptiveClip: undefined });
    assert.deepEqual([s.serverOptimizer, s.compression, s.aggregation, s.robust, s.secagg, { ...s.release }], [{ kind: 'fedavg' }, 'none', 'fedavg', undefined, undefined, { signing: 'coordinator', publicKey: '' }]);
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.training) && Object.isFrozen(s.dp));
    // derived: minUpdates = min(cohort, max(⌈cohort/2⌉, minContributors)); under DP minContributors 10; alpha 2·rank
    assert.equal(spec({ cohortSize: 7 }).minUpdates, 4);
    assert.equal(spec({ cohortSize: 20, dp: DP }).minContributors, 10);
    assert.equal(spec({ cohortSize: 12, dp: DP }).minUpdates, 10);
    assert.equal(spec({ lora: { rank: 3 } }).lora.alpha, 6);
    assert.deepEqual(spec({ secagg: true, dp: { clipNorm: 1 } }).secagg, { neighbours: undefined, phaseTimeoutMs: 30_000 });
    assert.deepEqual(spec({ robust: { rule: 'trimmed-mean' } }).robust, { rule: 'trimmed-mean', beta: 0.1 });
    assert.deepEqual(spec({ robust: { rule: 'bulyan' } }).robust, { rule: 'bulyan', f: 1 });
    assert.deepEqual(spec({ cohortSize: 40, dp: { ...DP, adaptiveClip: true } }).dp.adaptiveClip, { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 2 });
    assert.equal(spec({ dp: { clipNorm: 1, adaptiveClip: {} } }).dp.adaptiveClip?.countNoiseStd, 0);
  });

  it('the README table shows the schema\'s defaults', () => {
    const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'README.md'), 'utf8');
    const cell = (field: string): string => {
      const row = readme.split('\n').find((l) => l.startsWith(`| ${field} | `));
      assert.ok(row, `README has a row for ${field}`);
      return row.split(' | ')[1];
    };
    const s = spec({});
    const t = s.training;
    const expected: Record<string, string> = {
      '`lora`': `rank ${s.lora.rank}, alpha ${s.lora.alpha / s.lora.rank}·rank, \`${s.lora.targets.join(',')}\`, seed ${s.lora.seed}`,
      '`training`': `${t.steps} steps, batch ${t.batchSize}, seqLen ${t.seqLen}, lr ${t.lr.toExponential()}, clipNorm ${t.clipNorm}, ${t.quant}, replay ${t.replayFraction} (${t.replayTokens} tokens), proximalMu ${t.proximalMu}, dataFormat \`${t.dataFormat}\``,
      '`cohortSize`': String(s.cohortSize),
      '`overSelect`': String(s.overSelect),
      '`roundDeadlineMs`, `rounds`, `retryDelayMs`': `${s.roundDeadlineMs}, ${s.rounds}, ${s.retryDelayMs}`,
      '`dp.mode`': `\`${s.dp.mode}\``,
      '`dp.clipNorm`, `dp.noiseMultiplier`': `${s.dp.clipNorm}, ${s.dp.noiseMultiplier}`,
      '`dp.delta`, `dp.epsilonBudget`': `${s.dp.delta.toExponential()}, ${s.dp.epsilonBudget === Infinity ? 'none' : s.dp.epsilonBudget}`,
      '`serverOptimizer.kind`': `\`${s.serverOptimizer.kind}\``,
      '`aggregation`': `\`${s.aggregation}\``,
      '`compression`': `\`${s.compression}\``,
      '`lora.freezeA`': String(s.lora.freezeA),
      '`release`': `\`{ "signing": "${s.release.signing}" }\``,
    };
    for (const [field, want] of Object.entries(expected)) assert.equal(cell(field), want, field);
  });

  it('refuses unknown keys at every level, naming the path, suggesting keys within edit distance 2', () => {
    assert.deepEqual(problems({ training: { stesp: 3 } }), ['program "p": training.stesp: unknown key; did you mean "steps"?']);
    assert.deepEqual(problems({ cohortsize: 3 }), ['program "p": cohortsize: unknown key; did you mean "cohortSize"?']);
    assert.deepEqual(problems({ dp: { noiseMultiplyer: 1 } }), ['program "p": dp.noiseMultiplyer: unknown key; did you mean "noiseMultiplier"?']);
    assert.deepEqual(problems({ dp: { clipNorm: 1, adaptiveClip: { targetQuantil: 0.5 } } }), ['program "p": dp.adaptiveClip.targetQuantil: unknown key; did you mean "targetQuantile"?']);
    assert.deepEqual(problems({ lora: { rnak: 4 } }), ['program "p": lora.rnak: unknown key; did you mean "rank"?']);
    assert.deepEqual(problems({ serverOptimizer: { kind: 'fedavgm', momentun: 0.5 } }), ['program "p": serverOptimizer.momentun: unknown key; did you mean "momentum"?']);
    assert.deepEqual(problems({ secagg: { neighbors: 4 }, dp: { clipNorm: 1 } }), ['program "p": secagg.neighbors: unknown key; did you mean "neighbours"?']);
    assert.deepEqual(problems({ release: { publickey: 'x' } }), ['program "p": release.publickey: unknown key; did you mean "publicKey"?']);
    assert.deepEqual(problems({ robust: { rule: 'krum', F: 1 } }), ['program "p": robust.F: unknown key; did you mean "f"?']);
    // nothing within distance 2: the keys allowed there instead
    const [far] = problems({ training: { epochs: 2 } });
    assert.match(far, /^program "p": training\.epochs: unknown key; expected one of steps, batchSize, .*dataFormat$/);
  });

  it('reports every independent problem at once, each naming its path', () => {
    const got = problems({ cohortSize: 0, training: { steps: -1, stesp: 2 }, compression: 'zip', dp: { delta: 2 } });
    assert.deepEqual(new Set(got), new Set([
      'program "p": cohortSize must be a positive integer, got 0',
      'program "p": training.steps must be a positive integer, got -1',
      'program "p": training.stesp: unknown key; did you mean "steps"?',
      'program "p": compression must be one of "none", "q8", "q4", got "zip"',
      'program "p": dp.delta must be a number in (0, 1), got 2',
    ]));
  });

  it('field rules: closed name lists, ranges and types', () => {
    rule({ serverOptimizer: { kind: 'adam' } }, 'serverOptimizer.kind', /must be one of "fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi", got "adam"$/, { serverOptimizer: { kind: 'fedadam' } });
    rule({ robust: { rule: 'mean' } }, 'robust.rule', /must be one of "median", "trimmed-mean", "krum", "multi-krum", "bulyan", got "mean"$/, { robust: { rule: 'median' } });
    rule({ aggregation: 'sum' }, 'aggregation', /must be one of "fedavg", "exact-dw"/, { aggregation: 'exact-dw' });
    rule({ training: { quant: 'int2' } }, 'training.quant', /must be one of "none", "int8", "int4", "native", got "int2"$/, { training: { quant: 'int4' } });
    rule({ dp: { mode: 'global' } }, 'dp.mode', /must be one of "none", "central", "local", "distributed"/, { dp: { mode: 'none' } });
    rule({ release: { signing: 'hsm' } }, 'release.signing', /must be one of "coordinator", "offline"/, { release: { signing: 'coordinator' } });
    rule({ lora: { targets: ['wq', 'wz'] } }, 'lora.targets[1]', /must be one of "wq", .*got "wz"$/, { lora: { targets: ['wq', 'wo'] } });
    rule({ overSelect: 11 }, 'overSelect', /must be a number in \[1, 10\], got 11$/, { overSelect: 10 });
    rule({ training: { seqLen: 1 } }, 'training.seqLen', /must be an integer ≥ 2, got 1$/, { training: { seqLen: 2 } });
    rule({ training: { replayFraction: 0.95 } }, 'training.replayFraction', /\[0, 0\.95\)/, { training: { replayFraction: 0.9 } });
    rule({ secagg: { neighbours: 3 }, dp: { clipNorm: 1 } }, 'secagg.neighbours', /an even integer ≥ 2, got 3$/, { secagg: { neighbours: 4 }, dp: { clipNorm: 1 } });
    rule({ secagg: 'yes' }, 'secagg', /must be true, false or an object, got "yes"$/, { secagg: false });
    rule({ enrolmentToken: 'short' }, 'enrolmentToken', /at least 8 characters/, { enrolmentToken: 'longer-token' });
    rule({ training: 3 }, 'training', /must be an object, got 3$/, { training: {} });
    assert.deepEqual(problems({ id: 'bad id' }), ['program.id must be 1–64 of [A-Za-z0-9._-], got "bad id"']);
  });

  it('base and tokenizer: required, existing, tokenizer with llama2.c bases (directory bases: program-config.spec)', () => {
    assert.deepEqual(problems({ base: undefined }), ['program "p": base is required (the path of the base model: a .bin or .gguf file, or a Hugging Face checkpoint directory)']);
    rule({ base: '/no/such/model.bin' }, 'base', /\/no\/such\/model\.bin does not exist$/, {});
    rule({ tokenizer: undefined }, 'tokenizer', /is required with a llama2\.c base/, { tokenizer: undefined, base: MODEL.gguf, minContributors: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-cs-'));
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ programs: [{ id: 'rel', base: MODEL.gguf, enrolmentToken: TOKEN }] }));
    writeFileSync(join(dir, 'tok.bin'), 'x');
    writeFileSync(join(dir, 'q.json'), JSON.stringify({ id: 'rel', base: MODEL.gguf, tokenizer: 'tok.bin', enrolmentToken: TOKEN }));
    const [q] = readProgramsFile(join(dir, 'q.json'));
    assert.equal(q.tokenizerPath, join(dir, 'tok.bin'), 'relative paths resolve against the config file');
  });

  it('minContributors and minUpdates against cohortSize', () => {
    rule({ cohortSize: 1 }, 'minContributors', /defaults to 2, more than cohortSize \(1\); set minContributors explicitly/, { cohortSize: 1, minContributors: 1 });
    rule({ cohortSize: 4, dp: DP }, 'minContributors', /defaults to 10 under DP, more than cohortSize \(4\)/, { cohortSize: 4, minContributors: 4, dp: DP });
    rule({ cohortSize: 4, minContributors: 5 }, 'minContributors', /≤ cohortSize \(4\), got 5$/, { cohortSize: 4, minContributors: 4 });
    rule({ cohortSize: 4, minUpdates: 5 }, 'minUpdates', /≤ cohortSize \(4\), got 5$/, { cohortSize: 4, minUpdates: 4 });
  });

  it('DP: clip norm and noise, budget, population', () => {
    rule({ dp: { ...DP, noiseMultiplier: 0 } }, 'dp.mode', /"central" needs dp\.clipNorm > 0 and dp\.noiseMultiplier > 0/, { dp: DP });
    rule({ dp: { ...DP, mode: 'local', clipNorm: 0 } }, 'dp.mode', /"local" needs dp\.clipNorm > 0/, { dp: { ...DP, mode: 'local' } });
    rule({ dp: { epsilonBudget: 8 } }, 'dp.epsilonBudget', /needs a dp\.mode other than "none"/, { dp: { ...DP, epsilonBudget: 8 } });
    rule({ dp: { ...DP, population: undefined } }, 'dp.population', /is required with dp\.mode "central"/, { dp: { ...DP, population: 10 } });
    rule({ dp: { ...DP, population: 9 } }, 'dp.population', /≥ cohortSize \(10\) under DP, got 9$/, { dp: { ...DP, population: 10 } });
    assert.equal(spec({ dp: { ...DP, epsilonBudget: null } }).dp.epsilonBudget, Infinity);
  });

  it('adaptive clipping: needs a clip norm, only with "none" or "central", leaves noise for the update', () => {
    rule({ dp: { adaptiveClip: true } }, 'dp.adaptiveClip', /needs dp\.clipNorm > 0/, { dp: { adaptiveClip: true, clipNorm: 0.1 } });
    rule({ dp: { ...DP, mode: 'distributed', adaptiveClip: true } }, 'dp.adaptiveClip', /works with dp\.mode "none" or "central", not "distributed"/, { dp: { ...DP, mode: 'central', adaptiveClip: { countNoiseStd: 0.6 } } });
    // central: count noise σ_b must exceed 1/(2z) (z = 1 → 0.5); the default cohort/20 = 0.5 at cohort 10 does not
    rule({ dp: { ...DP, adaptiveClip: true } }, 'dp.adaptiveClip.countNoiseStd', /must exceed 1\/\(2z\) = 0\.5 .*got 0\.5 \(the default, cohortSize\/20\)/, { dp: { ...DP, adaptiveClip: { countNoiseStd: 0.6 } } });
    assert.deepEqual(problems({ dp: { ...DP, adaptiveClip: false } }), []);
  });

  it('robust rules and exact-dW aggregation are not for central DP; beta and f belong to their rules', () => {
    rule({ dp: DP, cohortSize: 12, robust: { rule: 'median' } }, 'robust', /cannot be combined with central DP/, { dp: { ...DP, mode: 'local' }, cohortSize: 12, robust: { rule: 'median' } });
    rule({ dp: DP, cohortSize: 12, aggregation: 'exact-dw' }, 'aggregation', /"exact-dw" cannot be combined with central DP/, { dp: { ...DP, mode: 'local' }, cohortSize: 12, aggregation: 'exact-dw' });
    rule({ robust: { rule: 'krum', beta: 0.1 } }, 'robust.beta', /only for robust\.rule "trimmed-mean", not "krum"/, { robust: { rule: 'trimmed-mean', beta: 0.1 } });
    rule({ robust: { rule: 'median', f: 1 } }, 'robust.f', /only for robust\.rule "krum", "multi-krum" or "bulyan", not "median"/, { robust: { rule: 'multi-krum', f: 1 } });
  });

  it('secure aggregation: clip norm, no adaptive clipping, DP mode, plain FedAvg, at least 3 updates', () => {
    const sa = { secagg: true, dp: { clipNorm: 1 } };
    rule({ secagg: true }, 'secagg', /needs dp\.clipNorm > 0/, sa);
    rule({ ...sa, dp: { clipNorm: 1, adaptiveClip: true } }, 'secagg', /cannot be combined with dp\.adaptiveClip/, sa);
    rule({ ...sa, dp: { ...DP, clipNorm: 1 } }, 'secagg', /works with dp\.mode "none" or "distributed", not "central"/, { ...sa, dp: { ...DP, clipNorm: 1, mode: 'distributed' } });
    rule({ ...sa, dp: { ...DP, clipNorm: 1, mode: 'local' } }, 'secagg', /not "local"/, sa);
    for (const extra of [{ compression: 'q8' }, { aggregation: 'exact-dw' }, { robust: { rule: 'median' } }]) rule({ ...sa, ...extra }, 'secagg', /needs plain FedAvg without robust rules or compression/, sa);
    rule({ ...sa, minUpdates: 2 }, 'secagg', /needs minUpdates ≥ 3, got 2$/, { ...sa, minUpdates: 3 });
    rule({ ...sa, cohortSize: 4 }, 'secagg', /needs minUpdates ≥ 3, got 2$/, { ...sa, cohortSize: 5 });
  });

  it('release signing: an offline key needs its public half; the coordinator key takes none', () => {
    const key = 'ab'.repeat(32);
    rule({ release: { signing: 'offline' } }, 'release.publicKey', /64 lowercase hex characters/, { release: { signing: 'offline', publicKey: key } });
    rule({ release: { signing: 'offline', publicKey: key.toUpperCase() } }, 'release.publicKey', /64 lowercase hex/, { release: { signing: 'offline', publicKey: key } });
    rule({ release: { publicKey: key } }, 'release.publicKey', /only for release\.signing "offline"/, { release: {} });
  });

  it('a config file: programs[i] paths, unique ids, at least one program, the single-program form', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-cf-'));
    const file = (name: string, body: unknown): string => {
      writeFileSync(join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
      return join(dir, name);
    };
    const good = { ...base, id: 'a' };
    const c = checkProgramsFile(file('ok.json', { programs: [good, { ...good, id: 'b' }] }));
    assert.ok(c.ok && c.programs.map((p) => p.id).join() === 'a,b');
    const bad = checkProgramsFile(file('bad.json', { programs: [{ ...good, training: { stesp: 3 } }, good], progams: 1 }));
    assert.ok(!bad.ok);
    assert.deepEqual(bad.issues, ['programs[0].training.stesp: unknown key; did you mean "steps"?', 'progams: unknown key; did you mean "programs"?', 'programs[1].id repeats "a", the id of programs[0]']);
    const empty = file('empty.json', { programs: [] });
    assert.deepEqual(checkProgramsFile(empty), { ok: false, issues: ['programs must hold at least one program'] });
    assert.deepEqual(checkProgramsFile(file('typo.json', { program: [good] })), { ok: false, issues: ['programs is required (the list of programs this coordinator runs)', 'program: unknown key; did you mean "programs"?'] });
    assert.deepEqual(checkProgramsFile(file('one.json', { ...good, rounds: 0 })), { ok: false, issues: ['rounds must be a positive integer ≤ 1000000, got 0'] });
    const notJson = file('broken.json', '{ "programs": [');
    assert.throws(() => readProgramsFile(notJson), (e: unknown) => e instanceof RangeError && e.message.startsWith(`cannot read config ${notJson}: `));
    assert.throws(() => readProgramsFile(empty), (e: unknown) => e instanceof ConfigError && e.message === 'programs must hold at least one program');
  });
});
