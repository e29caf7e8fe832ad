/**
 * From RDP (or zCDP) to (ε, δ)-DP. The improved conversion (Balle et al. 2020; Canonne, Kamath
 * & Steinke 2020): ε = r(α) + log(1 − 1/α) − (log δ + log α)/(α − 1); the classic one
 * (Mironov 2017): ε = r(α) + log(1/δ)/(α − 1). Each takes the best order.
 */

/** Which RDP → (ε, δ) conversion. */
export type Conversion = 'improved' | 'classic';

function checkDelta(where: string, delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`${where}: delta must be in (0, 1), got ${delta}`);
}

/** ε at one order. */
export function epsilonAtOrder(rdp: number, alpha: number, delta: number, conversion: Conversion = 'improved'): number {
  if (!(rdp >= 0)) throw new RangeError(`epsilonAtOrder: rdp must be ≥ 0, got ${rdp}`);
  if (!(alpha > 1) || !Number.isFinite(alpha)) throw new RangeError(`epsilonAtOrder: alpha must be a finite order > 1, got ${alpha}`);
  checkDelta('epsilonAtOrder', delta);
  if (conversion === 'classic') return rdp + Math.log(1 / delta) / (alpha - 1);
  if (delta * delta + Math.expm1(-rdp) >= 0) return 0; // the privacy loss is already within δ
  return Math.max(0, rdp + Math.log1p(-1 / alpha) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1));
}

/** The smallest ε over orders, with the order that achieves it. */
export function rdpToEpsilon(orders: readonly number[], rdp: readonly number[], delta: number, conversion: Conversion = 'improved'): { epsilon: number; order: number } {
  checkDelta('rdpToEpsilon', delta);
  if (orders.length !== rdp.length || orders.length === 0) throw new RangeError('rdpToEpsilon: orders and rdp must be non-empty and of equal length');
  let best = { epsilon: Infinity, order: NaN };
  orders.forEach((a, i) => {
    if (!(a > 1)) throw new RangeError(`rdpToEpsilon: every order must be > 1, got ${a}`);
    const e = epsilonAtOrder(rdp[i], a, delta, conversion);
    if (e < best.epsilon) best = { epsilon: e, order: a };
  });
  return best;
}

/** ε of ρ-zCDP at δ (RDP(α) = ρα for every α > 1), minimised over continuous α. */
export function zcdpToEpsilon(rho: number, delta: number): number {
  checkDelta('zcdpToEpsilon', delta);
  if (!(rho >= 0) || !Number.isFinite(rho)) throw new RangeError(`zcdpToEpsilon: rho must be a finite number ≥ 0, got ${rho}`);
  if (rho === 0) return 0;
  const f = (a: number): number => epsilonAtOrder(rho * a, a, delta);
  // ε(α) is unimodal in log α: golden-section search on log α over [log 1.0001, log 1e6]
  let lo = Math.log(1.0001);
  let hi = Math.log(1e6);
  const g = (Math.sqrt(5) - 1) / 2;
  for (let k = 0; k < 200; k++) {
    const m1 = hi - g * (hi - lo);
    const m2 = lo + g * (hi - lo);
    if (f(Math.exp(m1)) < f(Math.exp(m2))) hi = m2;
    else lo = m1;
  }
  return f(Math.exp((lo + hi) / 2));
}
