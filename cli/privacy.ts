/**
 * `fedtune privacy epsilon|sigma`: the DP accountant from the command line, per sampling scheme.
 * poisson (the default): the Poisson-subsampled Gaussian at q (--q, or --cohort / --population).
 * first-come and fixed-cohort: no amplification by sampling is claimed — a device may be in every
 * round — so they are charged at q = 1 (the Gaussian mechanism, composed), a bound valid for any
 * selection.
 */
import { calibrateSigma, epsilonFor, prvCalibrateSigma, prvEpsilon, type Conversion } from '../privacy/index.js';
import { CliError, num, oneOf, parse } from './args.js';

/** Usage text. */
export const PRIVACY_USAGE = `fedtune privacy epsilon [--scheme poisson|first-come|fixed-cohort] (--q Q | --cohort M --population N) --sigma S --steps T --delta D [--accountant rdp|prv] [--conversion improved|classic] [--json]
  fedtune privacy sigma [--scheme …] (--q Q | --cohort M --population N) --steps T --epsilon E --delta D [--accountant rdp|prv] [--conversion improved|classic] [--json]
  (poisson, the default: each device in a round with probability q, the amplified bound; first-come and fixed-cohort
   claim no amplification and are charged q = 1; rdp, the default: Rényi DP; prv: the tighter privacy-loss-distribution
   accountant, an upper bound on ε)`;

const OPTIONS = {
  q: { type: 'string' },
  scheme: { type: 'string' },
  cohort: { type: 'string' },
  population: { type: 'string' },
  sigma: { type: 'string' },
  steps: { type: 'string' },
  delta: { type: 'string' },
  epsilon: { type: 'string' },
  accountant: { type: 'string' },
  conversion: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** The q a scheme is charged at: poisson's --q (or --cohort / --population); 1 for the others. */
function samplingRate(v: Record<string, string | boolean | undefined>, scheme: string): number {
  const given = ['q', 'cohort', 'population'].filter((k) => v[k] !== undefined);
  if (scheme !== 'poisson') {
    if (given.length) throw new CliError(`--${given[0]} is for --scheme poisson only: ${scheme} sampling claims no amplification and is charged at q = 1`);
    return 1;
  }
  if (v.q !== undefined) {
    if (v.cohort !== undefined || v.population !== undefined) throw new CliError('give either --q or --cohort and --population, not both');
    return need(v, 'q', { min: 0, minExclusive: true, max: 1 });
  }
  if (v.cohort === undefined && v.population === undefined) throw new CliError('--q is required (or --cohort and --population: q = cohort / population)');
  const population = need(v, 'population', { integer: true, min: 1 });
  const cohort = need(v, 'cohort', { integer: true, min: 1 });
  if (cohort > population) throw new CliError(`--cohort (${cohort}) must be at most --population (${population})`);
  return cohort / population;
}

function need(v: Record<string, string | boolean | undefined>, name: string, rule: Parameters<typeof num>[2]): number {
  const x = num(v, name, rule);
  if (x === undefined) throw new CliError(`--${name} is required`);
  return x;
}

/** Run the command. */
export async function privacyCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'epsilon' && sub !== 'sigma') throw new CliError(`privacy needs a subcommand, epsilon or sigma; got ${sub === undefined ? 'none' : `"${sub}"`}`);
  const v = parse(rest, OPTIONS);
  const accountant = oneOf(v, 'accountant', ['rdp', 'prv'], 'rdp');
  const conversion = oneOf<Conversion>(v, 'conversion', ['improved', 'classic'], 'improved');
  const scheme = oneOf(v, 'scheme', ['poisson', 'first-come', 'fixed-cohort'], 'poisson');
  const q = samplingRate(v, scheme);
  const sampling = { scheme, ...(scheme === 'poisson' ? {} : { note: 'no amplification by sampling is claimed: charged at q = 1' }) };
  const steps = need(v, 'steps', { integer: true, min: 1 });
  const delta = need(v, 'delta', { min: 0, minExclusive: true, max: 0.999999 });
  if (sub === 'epsilon') {
    const sigma = need(v, 'sigma', { min: 0, minExclusive: true });
    if (accountant === 'prv') {
      const epsilon = prvEpsilon({ q, sigma, steps, delta });
      if (epsilon === Infinity) throw new CliError(`--accountant prv gives no bound here (too little noise for its grid, or δ = ${delta} below its floating-point allowance); use --accountant rdp`);
      if (v.json) process.stdout.write(`${JSON.stringify({ epsilon, delta, q, sigma, steps, accountant, ...sampling })}\n`);
      else process.stdout.write(`ε = ${epsilon.toFixed(4)} at δ = ${delta} (PRV accountant, an upper bound; ${scheme} sampling, q = ${q})\n`);
      return;
    }
    const r = epsilonFor(q, sigma, steps, delta, conversion);
    if (v.json) process.stdout.write(`${JSON.stringify({ epsilon: r.epsilon, delta, order: r.order, q, sigma, steps, accountant, conversion, ...sampling })}\n`);
    else process.stdout.write(`ε = ${r.epsilon.toFixed(4)} at δ = ${delta} (RDP order ${r.order}, ${conversion} conversion; ${scheme} sampling, q = ${q})\n`);
  } else {
    const epsilon = need(v, 'epsilon', { min: 0, minExclusive: true });
    const sigma = accountant === 'prv' ? prvCalibrateSigma(q, steps, epsilon, delta) : calibrateSigma(q, steps, epsilon, delta, conversion);
    if (v.json) process.stdout.write(`${JSON.stringify({ sigma, epsilon, delta, q, steps, accountant, ...(accountant === 'rdp' ? { conversion } : {}), ...sampling })}\n`);
    else process.stdout.write(`σ = ${sigma.toFixed(4)} keeps ${steps} steps at q = ${q} (${scheme} sampling) within ε = ${epsilon}, δ = ${delta}\n`);
  }
}
