/**
 * An SVG chart of held-out loss against ε (log₂ axis), one line per cohort size, with the base
 * and each cohort's non-private loss as dashed reference lines: the privacy–utility picture.
 * A pure string builder, in the style of sim/report.ts.
 */

/** One cohort's curve: (ε, loss) points and its non-private loss. */
export interface EpsilonSeries {
  readonly label: string;
  readonly points: readonly (readonly [number, number])[];
  readonly nonPrivate?: number;
  readonly color: string;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The chart; `base` is the base model's loss (a grey dashed line). */
export function lossVsEpsilonSvg(title: string, series: readonly EpsilonSeries[], base: number): string {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) throw new RangeError('lossVsEpsilonSvg: no points');
  if (pts.some(([e]) => !(e > 0))) throw new RangeError('lossVsEpsilonSvg: every ε must be positive');
  const W = 720;
  const H = 420;
  const L = 70;
  const R = 200;
  const T = 40;
  const B = 50;
  const lx = pts.map(([e]) => Math.log2(e));
  const x0 = Math.min(...lx);
  const x1 = Math.max(x0 + 1, ...lx);
  const ys = [...pts.map(([, y]) => y), base, ...series.flatMap((s) => (s.nonPrivate === undefined ? [] : [s.nonPrivate]))];
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  const pad = (hi - lo || 1) * 0.08;
  lo -= pad;
  hi += pad;
  const px = (e: number): number => L + ((Math.log2(e) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number): number => T + ((hi - y) / (hi - lo)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(W - R) / 2 + L / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">ε (δ fixed; log scale)</text>`,
    `<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">held-out loss (nats/token)</text>`,
  ];
  for (const e of [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b)) out.push(`<text x="${px(e)}" y="${H - B + 16}" text-anchor="middle">${e}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = lo + ((hi - lo) * i) / 5;
    out.push(`<line x1="${L - 4}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${L - 8}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  const legend: { label: string; color: string; dashed: boolean }[] = [];
  const hline = (y: number, color: string): void => {
    out.push(`<line x1="${L}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="${color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  };
  hline(base, '#7f7f7f');
  legend.push({ label: 'base only', color: '#7f7f7f', dashed: true });
  for (const s of series) {
    const sorted = [...s.points].sort((a, b) => a[0] - b[0]);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${sorted.map(([e, y]) => `${px(e)},${py(y)}`).join(' ')}"/>`);
    for (const [e, y] of sorted) out.push(`<circle cx="${px(e)}" cy="${py(y)}" r="3" fill="${s.color}"/>`);
    legend.push({ label: s.label, color: s.color, dashed: false });
    if (s.nonPrivate !== undefined) {
      hline(s.nonPrivate, s.color);
      legend.push({ label: `${s.label}, non-private`, color: s.color, dashed: true });
    }
  }
  legend.forEach((g, i) => {
    const ly = T + 10 + i * 20;
    out.push(`<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 40}" y2="${ly}" stroke="${g.color}" stroke-width="2"${g.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${W - R + 46}" y="${ly + 4}">${esc(g.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
