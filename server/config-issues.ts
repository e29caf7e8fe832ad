/**
 * How config problems are worded: one sentence per problem, naming where it is
 * (`programs[0].training.steps must be a positive integer, got 0`), unknown keys with a
 * "did you mean" suggestion, and the error that carries them all.
 */

/** One problem in a config, with where it is (keys and array indices from the root). */
export interface ConfigIssue {
  readonly path: readonly (string | number)[];
  /** The sentence's predicate: "must be …", "needs …", or "unknown key; …". */
  readonly message: string;
}

/** A config that does not validate: `issues` holds every problem as one sentence; the message joins them with "; ". */
export class ConfigError extends RangeError {
  override name = 'ConfigError';
  constructor(readonly issues: readonly string[]) {
    super(issues.join('; '));
  }
}

/** A value as a config file would spell it (JSON; `undefined` for a missing one). */
export function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** A closed list as messages spell it: `"text", "chat"`. */
export function quoted(names: readonly string[]): string {
  return names.map((n) => JSON.stringify(n)).join(', ');
}

/**
 * Optimal-string-alignment distance (Damerau–Levenshtein with adjacent transpositions, each
 * substring edited once): insertions, deletions, substitutions and swaps of two neighbours
 * each cost 1.
 */
export function editDistance(a: string, b: string): number {
  if (typeof a !== 'string' || typeof b !== 'string') throw new TypeError('editDistance: a and b must be strings');
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The allowed key closest to `key` within edit distance 2 (ties: the first allowed), or undefined. */
export function closestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of allowed) {
    // case-only differences count as one edit, so "Steps" still finds "steps"
    const dist = Math.min(editDistance(key, k), key.toLowerCase() === k.toLowerCase() ? 1 : Infinity);
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best;
}

/** The predicate for an unknown key: a suggestion within distance 2, else the keys allowed there. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const near = closestKey(key, allowed);
  return near !== undefined ? `unknown key; did you mean ${JSON.stringify(near)}?` : `unknown key; expected one of ${allowed.join(', ')}`;
}

/** `programs[0].training.steps` from ['programs', 0, 'training', 'steps']. */
export function formatPath(path: readonly (string | number | symbol)[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/**
 * One sentence for an issue: `PATH: unknown key; …` for unknown keys, `PATH must be …` for
 * everything else. `root` names an empty path (the whole document) and prefixes the others
 * when given as `prefix` (e.g. `program "p": `).
 */
export function issueSentence(issue: ConfigIssue, root: string, prefix = ''): string {
  const where = issue.path.length === 0 ? root : `${prefix}${formatPath(issue.path)}`;
  return issue.message.startsWith('unknown key') ? `${where}: ${issue.message}` : `${where} ${issue.message}`;
}
