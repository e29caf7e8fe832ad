/**
 * What a simulation shows: markdown tables of held-out loss per domain, and an SVG plot of loss
 * per round with the baselines as reference lines. Pure string builders.
 */

/** Held-out losses of one adapter (or none). */
export interface LossRow {
  readonly label: string;
  /** nats/token per domain, in the domains' order. */
  readonly domains: readonly number[];
  readonly mean: number;
  readonly tinyStories: number;
  readonly bytesUp?: number;
  readonly bytesDown?: number;
  readonly seconds?: number;
  /** ε spent so far (DP runs). */
  readonly epsilon?: number;
}

/** Mean of a list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('mean: empty list');
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Human bytes: 1.2 MB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** A markdown table of loss rows (lower is better). */
export function lossTable(domainNames: readonly string[], rows: readonly LossRow[]): string {
  const extra = rows.some((r) => r.bytesUp !== undefined);
  const eps = rows.some((r) => r.epsilon !== undefined);
  const head = ['', ...domainNames, 'mean', 'TinyStories', ...(extra ? ['bytes up', 'bytes down', 'seconds'] : []), ...(eps ? ['ε'] : [])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) {
    const cells = [r.label, ...r.domains.map((x) => x.toFixed(3)), r.mean.toFixed(3), r.tinyStories.toFixed(3)];
    if (extra) cells.push(r.bytesUp === undefined ? '' : formatBytes(r.bytesUp), r.bytesDown === undefined ? '' : formatBytes(r.bytesDown), r.seconds === undefined ? '' : r.seconds.toFixed(1));
    if (eps) cells.push(r.epsilon === undefined ? '' : r.epsilon.toFixed(2));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** One line of the plot. */
export interface Series {
  readonly label: string;
  /** y per x = 0, 1, 2, … (a single value draws a horizontal reference line). */
  readonly values: readonly number[];
  readonly color: string;
  readonly dashed?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** An SVG line chart: x = round, y = loss. */
export function lossPlotSvg(title: string, series: readonly Series[], yLabel = 'held-out loss (nats/token)'): string {
  const W = 720;
  const H = 420;
  const L = 70;
  const R = 190;
  const T = 40;
  const B = 50;
  const xs = Math.max(1, ...series.map((s) => s.values.length - 1));
  const ys = series.flatMap((s) => s.values);
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  const pad = (hi - lo || 1) * 0.08;
  lo -= pad;
  hi += pad;
  const px = (x: number): number => L + (x / xs) * (W - L - R);
  const py = (y: number): number => T + ((hi - y) / (hi - lo)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - R / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">round</text>`,
    `<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (let x = 0; x <= xs; x++) out.push(`<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = lo + ((hi - lo) * i) / 5;
    out.push(`<line x1="${L - 4}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${L - 8}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  series.forEach((s, i) => {
    const pts = s.values.length === 1 ? [0, xs].map((x) => `${px(x)},${py(s.values[0])}`) : s.values.map((v, x) => `${px(x)},${py(v)}`);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts.join(' ')}"/>`);
    if (s.values.length > 1) for (const [x, v] of s.values.entries()) out.push(`<circle cx="${px(x)}" cy="${py(v)}" r="3" fill="${s.color}"/>`);
    const ly = T + 10 + i * 20;
    out.push(`<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 40}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${W - R + 46}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
