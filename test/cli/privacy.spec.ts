/**
 * `fedtune privacy` per sampling scheme. Independent checks: first-come / fixed-cohort are charged
 * q = 1, i.e. T Gaussian mechanisms, whose exact ε is known in closed form (√T/σ-GDP, Dong, Roth &
 * Su 2019; Balle & Wang 2018's δ(ε)) — the RDP answer must be a valid bound above it and close;
 * poisson through --cohort / --population equals --q = cohort / population, and costs less.
 */
import assert from 'node:assert/strict';
import { fedtune } from './run-fedtune.js';

/** erfc(x), Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}
const Phi = (x: number): number => 0.5 * erfc(-x / Math.SQRT2);

/** δ(ε) of μ-GDP: Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). */
const gdpDelta = (mu: number, eps: number): number => Phi(-eps / mu + mu / 2) - Math.exp(eps) * Phi(-eps / mu - mu / 2);

/** The exact ε of μ-GDP at δ (bisection on the decreasing δ(ε)). */
function gdpEpsilon(mu: number, delta: number): number {
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (gdpDelta(mu, mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

const json = (args: string[]): Record<string, unknown> => {
  const r = fedtune('privacy', ...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

describe('cli: fedtune privacy per sampling scheme', () => {
  it('first-come and fixed-cohort are charged q = 1: ε bounds the exact composed Gaussian mechanism from above, closely', () => {
    for (const scheme of ['first-come', 'fixed-cohort']) {
      const out = json(['epsilon', '--scheme', scheme, '--sigma', '4', '--steps', '16', '--delta', '1e-5']);
      assert.equal(out.scheme, scheme);
      assert.equal(out.q, 1);
      assert.match(String(out.note), /no amplification/);
      const exact = gdpEpsilon(Math.sqrt(16) / 4, 1e-5);
      const eps = out.epsilon as number;
      assert.ok(eps >= exact && eps < exact * 1.15, `RDP ε ${eps} vs exact ${exact}`);
    }
  });

  it('poisson: --cohort/--population is --q = cohort/population, costs less than no amplification, and sigma inverts epsilon', () => {
    const a = json(['epsilon', '--cohort', '100', '--population', '10000', '--sigma', '1', '--steps', '200', '--delta', '1e-6']);
    const b = json(['epsilon', '--q', '0.01', '--sigma', '1', '--steps', '200', '--delta', '1e-6']);
    assert.equal(a.scheme, 'poisson');
    assert.equal(a.q, 0.01);
    assert.equal(a.epsilon, b.epsilon);
    const none = json(['epsilon', '--scheme', 'first-come', '--sigma', '1', '--steps', '200', '--delta', '1e-6']);
    assert.ok((a.epsilon as number) < (none.epsilon as number) / 10);
    const s = json(['sigma', '--q', '0.01', '--steps', '200', '--epsilon', String(a.epsilon), '--delta', '1e-6']);
    assert.ok(Math.abs((s.sigma as number) - 1) < 2e-3, `σ ${s.sigma}`);
  });

  it('refuses what a scheme does not take, in one sentence', () => {
    const fails = (args: string[], re: RegExp): void => {
      const r = fedtune('privacy', ...args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, re);
    };
    fails(['epsilon', '--scheme', 'fixed-cohort', '--q', '0.1', '--sigma', '1', '--steps', '3', '--delta', '1e-5'], /--q is for --scheme poisson only: fixed-cohort sampling claims no amplification/);
    fails(['epsilon', '--sigma', '1', '--steps', '3', '--delta', '1e-5'], /--q is required \(or --cohort and --population/);
    fails(['epsilon', '--q', '0.1', '--cohort', '3', '--sigma', '1', '--steps', '3', '--delta', '1e-5'], /either --q or --cohort/);
    fails(['epsilon', '--cohort', '30', '--population', '3', '--sigma', '1', '--steps', '3', '--delta', '1e-5'], /--cohort \(30\) must be at most --population \(3\)/);
    fails(['epsilon', '--scheme', 'random', '--q', '0.1', '--sigma', '1', '--steps', '3', '--delta', '1e-5'], /--scheme/);
  });
});
