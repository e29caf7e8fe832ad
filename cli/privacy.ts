/** `fedtune privacy epsilon|sigma`: the DP accountant from the command line. */
import { calibrateSigma, epsilonFor, prvCalibrateSigma, prvEpsilon, type Conversion } from '../privacy/index.js';
import { CliError, num, oneOf, parse } from './args.js';

/** Usage text. */
export const PRIVACY_USAGE = `fedtune privacy epsilon --q Q --sigma S --steps T --delta D [--accountant rdp|prv] [--conversion improved|classic] [--json]
  fedtune privacy sigma --q Q --steps T --epsilon E --delta D [--accountant rdp|prv] [--conversion improved|classic] [--json]
  (rdp, the default: Rényi DP; prv: the tighter privacy-loss-distribution accountant, an upper bound on ε)`;

const OPTIONS = {
  q: { type: 'string' },
  sigma: { type: 'string' },
  steps: { type: 'string' },
  delta: { type: 'string' },
  epsilon: { type: 'string' },
  accountant: { type: 'string' },
  conversion: { type: 'string' },
  json: { type: 'boolean' },
} as const;

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
  const q = need(v, 'q', { min: 0, max: 1 });
  const steps = need(v, 'steps', { integer: true, min: 1 });
  const delta = need(v, 'delta', { min: 0, minExclusive: true, max: 0.999999 });
  if (sub === 'epsilon') {
    const sigma = need(v, 'sigma', { min: 0, minExclusive: true });
    if (accountant === 'prv') {
      const epsilon = prvEpsilon({ q, sigma, steps, delta });
      if (epsilon === Infinity) throw new CliError(`--accountant prv gives no bound here (too little noise for its grid, or δ = ${delta} below its floating-point allowance); use --accountant rdp`);
      if (v.json) process.stdout.write(`${JSON.stringify({ epsilon, delta, q, sigma, steps, accountant })}\n`);
      else process.stdout.write(`ε = ${epsilon.toFixed(4)} at δ = ${delta} (PRV accountant, an upper bound)\n`);
      return;
    }
    const r = epsilonFor(q, sigma, steps, delta, conversion);
    if (v.json) process.stdout.write(`${JSON.stringify({ epsilon: r.epsilon, delta, order: r.order, q, sigma, steps, accountant, conversion })}\n`);
    else process.stdout.write(`ε = ${r.epsilon.toFixed(4)} at δ = ${delta} (RDP order ${r.order}, ${conversion} conversion)\n`);
  } else {
    const epsilon = need(v, 'epsilon', { min: 0, minExclusive: true });
    const sigma = accountant === 'prv' ? prvCalibrateSigma(q, steps, epsilon, delta) : calibrateSigma(q, steps, epsilon, delta, conversion);
    if (v.json) process.stdout.write(`${JSON.stringify({ sigma, epsilon, delta, q, steps, accountant, ...(accountant === 'rdp' ? { conversion } : {}) })}\n`);
    else process.stdout.write(`σ = ${sigma.toFixed(4)} keeps ${steps} steps at q = ${q} within ε = ${epsilon}, δ = ${delta}\n`);
  }
}
