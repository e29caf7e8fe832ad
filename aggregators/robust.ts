/**
 * Byzantine-robust aggregation over Float32Array updates. All need every update at once:
 * memory O(n·d), and Krum/Multi-Krum/Bulyan O(n²) distances (O(n²·d) time).
 * - coordinateMedian: per-coordinate median.
 * - trimmedMean(β): per coordinate, drop the ⌊βn⌋ largest and smallest values, average the rest.
 * - krum(f) / multiKrum(f, m) (Blanchard et al. 2017): score each update by the summed squared
 *   distances to its n − f − 2 nearest others; keep the best (m best, averaged). Needs n ≥ 2f + 3.
 * - bulyan(f) (El Mhamdi et al. 2018): pick θ = n − 2f updates by repeated Krum, then per
 *   coordinate average the θ − 2f values closest to their median. Needs n ≥ 4f + 3.
 * - boundNorms(M): scale each update to L2 norm ≤ M (norm bounding, before any average).
 */

function check(where: string, updates: readonly Float32Array[]): number {
  if (!Array.isArray(updates) || updates.length === 0) throw new RangeError(`${where}: updates must be a non-empty array`);
  const d = updates[0].length;
  if (!(updates[0] instanceof Float32Array)) throw new TypeError(`${where}: update 0 is not a Float32Array`);
  updates.forEach((u, k) => {
    if (!(u instanceof Float32Array)) throw new TypeError(`${where}: update ${k} is not a Float32Array`);
    if (u.length !== d) throw new RangeError(`${where}: update ${k} has ${u.length} values, expected ${d}`);
    for (let i = 0; i < d; i++) if (!Number.isFinite(u[i])) throw new RangeError(`${where}: update ${k} holds a non-finite value at ${i}`);
  });
  return d;
}

function perCoordinate(updates: readonly Float32Array[], reduce: (sorted: Float64Array) => number): Float32Array {
  const n = updates.length;
  const d = updates[0].length;
  const out = new Float32Array(d);
  const col = new Float64Array(n);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < n; k++) col[k] = updates[k][i];
    col.sort();
    out[i] = reduce(col);
  }
  return out;
}

/** Per-coordinate median (mean of the middle two for even n). */
export function coordinateMedian(updates: readonly Float32Array[]): Float32Array {
  check('coordinateMedian', updates);
  const n = updates.length;
  return perCoordinate(updates, (s) => (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2));
}

/** Per-coordinate mean after dropping the ⌊βn⌋ smallest and largest values. */
export function trimmedMean(updates: readonly Float32Array[], beta: number): Float32Array {
  check('trimmedMean', updates);
  const n = updates.length;
  if (!(beta >= 0 && beta < 0.5)) throw new RangeError(`trimmedMean: beta must be in [0, 0.5), got ${beta}`);
  const k = Math.floor(beta * n);
  if (n - 2 * k < 1) throw new RangeError(`trimmedMean: trimming ${k} from each side of ${n} updates leaves none`);
  return perCoordinate(updates, (s) => {
    let sum = 0;
    for (let i = k; i < n - k; i++) sum += s[i];
    return sum / (n - 2 * k);
  });
}

function squaredDistances(updates: readonly Float32Array[]): Float64Array {
  const n = updates.length;
  const d = updates[0].length;
  const dist = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      let s = 0;
      for (let i = 0; i < d; i++) {
        const t = updates[a][i] - updates[b][i];
        s += t * t;
      }
      dist[a * n + b] = dist[b * n + a] = s;
    }
  }
  return dist;
}

/** Krum scores of the updates listed in `ids` (indices into a distance matrix of size n). */
function krumScores(dist: Float64Array, n: number, ids: readonly number[], f: number): number[] {
  const m = Math.max(0, ids.length - f - 2);
  return ids.map((a) => {
    const ds = ids.filter((b) => b !== a).map((b) => dist[a * n + b]).sort((x, y) => x - y);
    return ds.slice(0, m).reduce((s, v) => s + v, 0);
  });
}

function checkF(where: string, n: number, f: number, need: (f: number) => number): void {
  if (!Number.isInteger(f) || f < 0) throw new RangeError(`${where}: f must be a non-negative integer, got ${f}`);
  if (n < need(f)) throw new RangeError(`${where}: needs at least ${need(f)} updates to tolerate f = ${f}, got ${n}`);
}

/** Indices of the m updates with the lowest Krum scores (best first). */
export function multiKrumSelect(updates: readonly Float32Array[], f: number, m = 1): number[] {
  check('multiKrum', updates);
  const n = updates.length;
  checkF('multiKrum', n, f, (x) => 2 * x + 3);
  if (!Number.isInteger(m) || m < 1 || m > n) throw new RangeError(`multiKrum: m must be an integer in [1, ${n}], got ${m}`);
  const ids = updates.map((_, i) => i);
  const scores = krumScores(squaredDistances(updates), n, ids, f);
  return ids.sort((a, b) => scores[a] - scores[b] || a - b).slice(0, m);
}

function mean(updates: readonly Float32Array[], ids: readonly number[]): Float32Array {
  const d = updates[0].length;
  const acc = new Float64Array(d);
  for (const k of ids) for (let i = 0; i < d; i++) acc[i] += updates[k][i];
  return Float32Array.from(acc, (v) => v / ids.length);
}

/** Krum: the single update with the lowest score. */
export function krum(updates: readonly Float32Array[], f: number): Float32Array {
  return Float32Array.from(updates[multiKrumSelect(updates, f, 1)[0]]);
}

/** Multi-Krum: the mean of the m best-scored updates (default m = n − f). */
export function multiKrum(updates: readonly Float32Array[], f: number, m = updates.length - f): Float32Array {
  return mean(updates, multiKrumSelect(updates, f, m));
}

/** Bulyan over Krum. */
export function bulyan(updates: readonly Float32Array[], f: number): Float32Array {
  check('bulyan', updates);
  const n = updates.length;
  checkF('bulyan', n, f, (x) => 4 * x + 3);
  const dist = squaredDistances(updates);
  const theta = n - 2 * f;
  const left = updates.map((_, i) => i);
  const chosen: number[] = [];
  while (chosen.length < theta) {
    // Krum over what is left (|left| falls to 2f + 1 at the last pick; scores then use fewer neighbours)
    const scores = krumScores(dist, n, left, f);
    let best = 0;
    for (let i = 1; i < left.length; i++) if (scores[i] < scores[best]) best = i;
    chosen.push(left[best]);
    left.splice(best, 1);
  }
  const beta = theta - 2 * f;
  const picked = chosen.map((k) => updates[k]);
  return perCoordinate(picked, (s) => {
    const med = theta % 2 ? s[(theta - 1) / 2] : (s[theta / 2 - 1] + s[theta / 2]) / 2;
    // the β values closest to the median form a contiguous window of the sorted column
    let lo = 0;
    for (let start = 1; start + beta <= theta; start++) {
      const cur = Math.max(Math.abs(s[lo] - med), Math.abs(s[lo + beta - 1] - med));
      const cand = Math.max(Math.abs(s[start] - med), Math.abs(s[start + beta - 1] - med));
      if (cand < cur) lo = start;
    }
    let sum = 0;
    for (let i = lo; i < lo + beta; i++) sum += s[i];
    return sum / beta;
  });
}

/** Scale each update to L2 norm at most `maxNorm` (returns new arrays). */
export function boundNorms(updates: readonly Float32Array[], maxNorm: number): Float32Array[] {
  check('boundNorms', updates);
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new RangeError(`boundNorms: maxNorm must be a positive number, got ${maxNorm}`);
  return updates.map((u) => {
    let s = 0;
    for (let i = 0; i < u.length; i++) s += u[i] * u[i];
    const norm = Math.sqrt(s);
    const f = norm > maxNorm ? (maxNorm / norm) * (1 - 1e-7) : 1;
    return Float32Array.from(u, (v) => v * f);
  });
}
