/**
 * The cross-field rules of a program config (the field rules are on the fields in
 * config-schema.ts). Each rule runs only when the fields it reads parsed cleanly, so one
 * typo does not bring a cascade of follow-on complaints, and every independent problem of a
 * file is reported at once.
 */
import { existsSync, statSync } from 'node:fs';
import type { z } from 'zod';
import { baseFormat, type BaseFormat } from '../model/base-info.js';
import { ModelFormatError } from '../model/checkpoint.js';
import { hfBaseInfo } from '../model/hf-files.js';
import type { ProgramFields } from './config-schema.js';

/** minContributors and minUpdates with their derived defaults (2, or 10 under DP; min(cohort, max(⌈cohort/2⌉, minContributors))). */
export function derivedCounts(v: Pick<ProgramFields, 'cohortSize' | 'minContributors' | 'minUpdates'> & { readonly dp: { readonly mode: string } }): { minContributors: number; minUpdates: number; contributorsDefault: number } {
  const contributorsDefault = v.dp.mode === 'none' ? 2 : 10;
  const minContributors = v.minContributors ?? contributorsDefault;
  const minUpdates = v.minUpdates ?? Math.min(v.cohortSize, Math.max(Math.ceil(v.cohortSize / 2), minContributors));
  return { minContributors, minUpdates, contributorsDefault };
}

/** The format of the program's base, with an issue added when it is missing or unusable. */
function checkBase(v: ProgramFields, add: (path: string, message: string) => void, tokenizerOk: boolean): BaseFormat | undefined {
  const base = v.base;
  if (!existsSync(base)) {
    add('base', `${base} does not exist`);
    return undefined;
  }
  let format: BaseFormat;
  try {
    format = baseFormat(base);
  } catch (e) {
    if (e instanceof ModelFormatError) {
      add('base', `${base} is not a readable model file: ${e.message}`);
      return undefined;
    }
    throw e;
  }
  if (format !== 'hf') return format;
  // a Hugging Face directory: a readable checkpoint with its own tokenizer.json, and no separate tokenizer
  if (tokenizerOk && v.tokenizer !== undefined) add('tokenizer', `must not be set with a Hugging Face directory base (${base}); its tokenizer.json is the tokenizer`);
  try {
    const info = hfBaseInfo(base);
    if (!info.files.includes('tokenizer.json')) add('base', `${base} is a Hugging Face directory without tokenizer.json; devices need the tokenizer that comes with the checkpoint`);
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw e;
    add('base', `${base} is not a usable Hugging Face checkpoint: ${e.message}`);
  }
  return format;
}

/** The rules of `sampling` against dp, cohortSize, secagg and the deadline (server/sampling.ts). */
function samplingRules(v: ProgramFields, ok: (...f: string[]) => boolean, add: (path: string, message: string) => void): void {
  if (!ok('sampling', 'dp.mode')) return;
  const s = v.sampling;
  const d = v.dp;
  const scheme = s.scheme ?? (d.mode === 'none' ? 'first-come' : 'poisson');
  if (d.mode !== 'none' && scheme === 'first-come')
    add('sampling.scheme', `"first-come" cannot be used with dp.mode "${d.mode}": the devices that check in first are not a random sample, so the privacy amplification the accountant charges for would not hold; use "poisson" (the default under DP)`);
  if (d.mode !== 'none' && scheme === 'fixed-cohort')
    add(
      'sampling.scheme',
      `"fixed-cohort" cannot be used with dp.mode "${d.mode}": a uniformly random m of the n devices that checked in is sampling without replacement from a data-dependent n, which fedtune's Poisson accountants do not bound (charging it as Poisson can understate ε: Lebeda et al. 2024); use "poisson"`,
    );
  if (s.rate !== undefined && scheme !== 'poisson') add('sampling.rate', `is only for sampling.scheme "poisson", not "${scheme}"`);
  if (s.selectionMs !== undefined && scheme === 'first-come') add('sampling.selectionMs', 'is only for sampling.scheme "poisson" or "fixed-cohort" (first-come hands work out until the cohort is full)');
  if (s.selectionMs !== undefined && ok('roundDeadlineMs') && s.selectionMs >= v.roundDeadlineMs) add('sampling.selectionMs', `must be less than roundDeadlineMs (${v.roundDeadlineMs}) so sampled devices have time to train, got ${s.selectionMs}`);
  if (scheme === 'poisson' && s.rate === undefined && ok('dp.population') && d.population === undefined && d.mode === 'none')
    add('sampling.rate', 'is required with sampling.scheme "poisson" when dp.population is not declared (the default rate is cohortSize / dp.population)');
  if (scheme === 'poisson' && s.rate !== undefined && ok('dp.population', 'cohortSize') && d.population !== undefined && d.population > 0 && d.mode !== 'none') {
    const expected = s.rate * d.population;
    if (Math.abs(expected - v.cohortSize) > Math.max(1, 0.1 * v.cohortSize))
      add(
        'sampling.rate',
        `gives an expected cohort of rate × dp.population = ${expected.toPrecision(4)}, but cohortSize (${v.cohortSize}) is the fixed denominator of the DP mean (McMahan et al. 2018) and must be that expected cohort (within 10%); set cohortSize to ${Math.round(expected)} or drop sampling.rate (its default is cohortSize / dp.population)`,
      );
  }
  if (scheme === 'fixed-cohort' && v.secagg !== undefined && ok('secagg')) add('sampling.scheme', '"fixed-cohort" cannot be combined with secagg (its selection closes on its own timer); use "first-come" or "poisson"');
}

/** Add an issue to `ctx` for every cross-field rule `v` breaks (fields with issues of their own are skipped). */
export function crossFieldRules(v: ProgramFields, ctx: z.core.$RefinementCtx<ProgramFields>): void {
  const failed = ctx.issues.filter((i) => i.code !== 'unrecognized_keys').map((i) => (i.path ?? []).map(String).join('.'));
  // a field is usable when no issue sits on it, inside it, or on an object holding it
  const ok = (...fields: string[]): boolean => fields.every((f) => !failed.some((p) => p === f || p.startsWith(`${f}.`) || f.startsWith(`${p}.`) || p === ''));
  const add = (path: string, message: string): void => ctx.addIssue({ code: 'custom', path: path.split('.'), message, continue: true });
  const d = v.dp;

  if (ok('base')) {
    const format = checkBase(v, add, ok('tokenizer'));
    if (ok('tokenizer') && v.tokenizer !== undefined && format !== 'hf' && !existsSync(v.tokenizer)) add('tokenizer', `file ${v.tokenizer} does not exist`);
    if (ok('tokenizer') && v.tokenizer === undefined && format === 'llama2c') add('tokenizer', `is required with a llama2.c base (the tok*.bin that goes with ${v.base})`);
  }

  for (const f of ['text', 'baseText'] as const) {
    const file = v.eval?.[f];
    if (file !== undefined && ok(`eval.${f}`) && !(existsSync(file) && statSync(file).isFile())) add(`eval.${f}`, `file ${file} does not exist`);
  }

  if (ok('lora.targets') && new Set(v.lora.targets).size !== v.lora.targets.length) add('lora.targets', `repeat a matrix: ${v.lora.targets.join(', ')}`);

  const counts = ok('cohortSize', 'dp.mode', 'minContributors', 'minUpdates') ? derivedCounts(v) : undefined;
  if (counts) {
    if (v.minContributors === undefined && counts.contributorsDefault > v.cohortSize)
      add('minContributors', `defaults to ${counts.contributorsDefault}${d.mode === 'none' ? '' : ' under DP'}, more than cohortSize (${v.cohortSize}); set minContributors explicitly (1 publishes a single device's update as the adapter)`);
    else if (counts.minContributors > v.cohortSize) add('minContributors', `must be a positive integer ≤ cohortSize (${v.cohortSize}), got ${counts.minContributors}`);
    if (v.minUpdates !== undefined && v.minUpdates > v.cohortSize) add('minUpdates', `must be a positive integer ≤ cohortSize (${v.cohortSize}), got ${v.minUpdates}`);
  }

  if (ok('dp.mode', 'dp.clipNorm', 'dp.noiseMultiplier') && d.mode !== 'none' && !(d.clipNorm > 0 && d.noiseMultiplier > 0)) add('dp.mode', `"${d.mode}" needs dp.clipNorm > 0 and dp.noiseMultiplier > 0`);
  if (ok('dp.mode', 'dp.epsilonBudget') && d.mode === 'none' && d.epsilonBudget != null) add('dp.epsilonBudget', 'needs a dp.mode other than "none"');
  if (ok('dp.mode', 'dp.population') && d.mode !== 'none' && d.population === undefined)
    add('dp.population', `is required with dp.mode "${d.mode}": the number of users the cohort is drawn from (the privacy accountant cannot trust enrolments for it)`);
  if (ok('dp.mode', 'dp.population', 'cohortSize') && d.mode !== 'none' && d.population !== undefined && d.population < v.cohortSize)
    add('dp.population', `must be an integer ≥ cohortSize (${v.cohortSize}) under DP, got ${d.population}`);

  samplingRules(v, ok, add);

  const a = d.adaptiveClip;
  if (a !== undefined && ok('dp.adaptiveClip', 'dp.mode', 'dp.clipNorm', 'dp.noiseMultiplier', 'cohortSize')) {
    if (!(d.clipNorm > 0)) add('dp.adaptiveClip', 'needs dp.clipNorm > 0 (the initial clip norm, e.g. 0.1)');
    if (d.mode === 'local' || d.mode === 'distributed') add('dp.adaptiveClip', `works with dp.mode "none" or "central", not "${d.mode}"`);
    const countNoiseStd = a.countNoiseStd ?? (d.mode === 'none' ? 0 : v.cohortSize / 20);
    if (d.mode === 'central' && d.noiseMultiplier > 0 && !(countNoiseStd > 1 / (2 * d.noiseMultiplier)))
      add('dp.adaptiveClip.countNoiseStd', `must exceed 1/(2z) = ${1 / (2 * d.noiseMultiplier)} so some noise is left for the update, got ${countNoiseStd}${a.countNoiseStd === undefined ? ' (the default, cohortSize/20)' : ''}`);
  }

  if (v.robust !== undefined && ok('robust')) {
    if (ok('dp.mode') && d.mode === 'central') add('robust', 'cannot be combined with central DP (the noise is calibrated to the plain sum)');
    if (v.robust.beta !== undefined && v.robust.rule !== 'trimmed-mean') add('robust.beta', `is only for robust.rule "trimmed-mean", not "${v.robust.rule}"`);
    if (v.robust.f !== undefined && v.robust.rule !== 'krum' && v.robust.rule !== 'multi-krum' && v.robust.rule !== 'bulyan') add('robust.f', `is only for robust.rule "krum", "multi-krum" or "bulyan", not "${v.robust.rule}"`);
  }
  if (ok('aggregation', 'dp.mode') && v.aggregation === 'exact-dw' && d.mode === 'central') add('aggregation', '"exact-dw" cannot be combined with central DP (the noise is calibrated to the plain sum)');

  if (v.secagg !== undefined && ok('secagg')) {
    if (ok('dp.clipNorm') && !(d.clipNorm > 0)) add('secagg', 'needs dp.clipNorm > 0 (it bounds the fixed-point encoding)');
    if (ok('dp.adaptiveClip') && d.adaptiveClip !== undefined) add('secagg', 'cannot be combined with dp.adaptiveClip');
    if (ok('dp.mode') && (d.mode === 'central' || d.mode === 'local')) add('secagg', `works with dp.mode "none" or "distributed", not "${d.mode}"`);
    if (ok('robust', 'aggregation', 'compression') && (v.robust !== undefined || v.aggregation !== 'fedavg' || v.compression !== 'none'))
      add('secagg', 'needs plain FedAvg without robust rules or compression (the coordinator sees only the sum)');
    if (counts && counts.minUpdates < 3) add('secagg', `needs minUpdates ≥ 3, got ${counts.minUpdates}`);
  }

  if (ok('release')) {
    const r = v.release;
    if (r.signing === 'offline' && !(typeof r.publicKey === 'string' && /^[0-9a-f]{64}$/.test(r.publicKey)))
      add('release.publicKey', "must be the offline release key's public half (64 lowercase hex characters; see fedtune release keygen)");
    if (r.signing === 'coordinator' && r.publicKey !== undefined && r.publicKey !== '') add('release.publicKey', 'is only for release.signing "offline" (the coordinator makes its own key)');
  }
}
