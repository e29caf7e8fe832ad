/**
 * A small, independent parser of the Prometheus text exposition format 0.0.4 (as documented at
 * prometheus.io/docs/instrumenting/exposition_formats): `# HELP`, `# TYPE` and sample lines
 * `name{label="value",…} value [timestamp]`, with the escapes \\, \" and \n in label values and
 * +Inf / -Inf / NaN values. Strict: anything else throws, naming the line.
 */

/** One sample. */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed exposition: the families' types and help, and every sample. */
export interface PromText {
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
  readonly samples: readonly PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, line: number): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s.trim() === '' || Number.isNaN(v)) throw new Error(`prom text line ${line}: bad value ${JSON.stringify(s)}`);
  return v;
}

/** Parse an exposition. */
export function parsePromText(text: string): PromText {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: PromSample[] = [];
  text.split('\n').forEach((raw, i) => {
    const n = i + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // a plain comment
      if (!NAME.test(m[2])) throw new Error(`prom text line ${n}: bad metric name ${m[2]}`);
      if (m[1] === 'TYPE') {
        if (!TYPES.has(m[3])) throw new Error(`prom text line ${n}: bad type ${m[3]}`);
        if (types.has(m[2])) throw new Error(`prom text line ${n}: second TYPE for ${m[2]}`);
        types.set(m[2], m[3]);
      } else help.set(m[2], m[3]);
      return;
    }
    let p = 0;
    while (p < raw.length && raw[p] !== '{' && raw[p] !== ' ') p++;
    const name = raw.slice(0, p);
    if (!NAME.test(name)) throw new Error(`prom text line ${n}: bad metric name ${JSON.stringify(name)}`);
    const labels: Record<string, string> = {};
    if (raw[p] === '{') {
      p++;
      while (raw[p] !== '}') {
        const eq = raw.indexOf('=', p);
        if (eq < 0) throw new Error(`prom text line ${n}: label without =`);
        const key = raw.slice(p, eq);
        if (!LABEL.test(key)) throw new Error(`prom text line ${n}: bad label name ${JSON.stringify(key)}`);
        if (raw[eq + 1] !== '"') throw new Error(`prom text line ${n}: label value must be quoted`);
        let q = eq + 2;
        let v = '';
        for (;;) {
          if (q >= raw.length) throw new Error(`prom text line ${n}: unterminated label value`);
          const ch = raw[q];
          if (ch === '\\') {
            const e = raw[q + 1];
            v += e === 'n' ? '\n' : e;
            q += 2;
          } else if (ch === '"') {
            q++;
            break;
          } else {
            v += ch;
            q++;
          }
        }
        labels[key] = v;
        if (raw[q] === ',') q++;
        p = q;
      }
      p++;
    }
    if (raw[p] !== ' ') throw new Error(`prom text line ${n}: expected a space before the value`);
    const [value, ts, extra] = raw.slice(p + 1).split(' ');
    if (extra !== undefined || (ts !== undefined && !/^-?\d+$/.test(ts))) throw new Error(`prom text line ${n}: bad timestamp or trailing text`);
    samples.push({ name, labels, value: parseValue(value, n) });
  });
  return { types, help, samples };
}

/** The family a sample belongs to (histogram/summary samples carry _bucket, _sum, _count). */
export function familyOf(sampleName: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(sampleName)) return sampleName;
  for (const suffix of ['_bucket', '_sum', '_count', '_created']) {
    if (sampleName.endsWith(suffix) && types.has(sampleName.slice(0, -suffix.length))) return sampleName.slice(0, -suffix.length);
  }
  return undefined;
}

/** The value of the one sample named `name` whose labels include `labels`; throws if none or several. */
export function sampleValue(t: PromText, name: string, labels: Record<string, string> = {}): number {
  const hits = t.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`${hits.length} samples ${name}${JSON.stringify(labels)}`);
  return hits[0].value;
}
