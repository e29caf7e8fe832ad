/**
 * The privacy–utility experiment (issue 10): one fleet of N virtual devices on the demo's
 * partner domains (Dirichlet shards), one coordinator hosting one program per cell, every cell
 * trained with the same sampling — the coordinator's Poisson coins at q = cohort / N over the
 * devices that check in (every online device does, each round) — and the same rounds:
 * - non-private FedAvg per cohort size (the gain to keep: base − federated);
 * - DP-FedAvg (central noise) at each ε, z calibrated by the accountant for the planned rounds at
 *   q, δ = min(1e-6, N^-1.1), adaptive clipping (median norm);
 * - distributed noise under secure aggregation at the SecAgg cohort.
 * Per cell: mean held-out loss, share of the non-private gain kept, TinyStories forgetting, wall
 * time. Writes results.json and table.md to --out, and the loss-vs-ε plot to --plot. When no cell
 * at ε ≤ 8 keeps 70%, it projects the cohort size that would (see `projection` in the output).
 *
 * Usage: node dist/examples/privacy-utility.js [--population 10000] [--rounds 3]
 *   [--cohorts 100,500,1000] [--epsilons 1,2,4,8] [--secagg-cohort 500] [--secagg-epsilons 8]
 *   [--shards dirichlet:0.3] [--server-opt fedavg] [--server-lr 1] [--lr 5e-3] [--threads 2]
 *   [--batch 8] [--out out/privacy-utility] [--plot docs/privacy-utility.svg] [--seed 1]
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { calibrateSigma } from '../privacy/accountant/index.js';
import { Fleet, lossVsEpsilonSvg, parseShardScheme, populationProgram, trainPopulation, type PopulationOptions, type PopulationProgram } from '../sim/index.js';
import type { ServerOptimizerKind } from '../aggregators/index.js';

const { values: v } = parseArgs({
  options: {
    population: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    cohorts: { type: 'string', default: '100,500,1000' },
    epsilons: { type: 'string', default: '1,2,4,8' },
    /** Per cohort ε lists, overriding --epsilons: "100:1,2,4,8;500:8;1000:8". */
    grid: { type: 'string' },
    'secagg-cohort': { type: 'string', default: '500' },
    'secagg-epsilons': { type: 'string', default: '8' },
    'secagg-timeout': { type: 'string', default: '120000' },
    shards: { type: 'string', default: 'dirichlet:0.3' },
    'server-opt': { type: 'string', default: 'fedavg' },
    'server-lr': { type: 'string', default: '1' },
    lr: { type: 'string', default: '5e-3' },
    /** Starting clip norm of adaptive clipping (central DP) and the fixed one under SecAgg. */
    clip: { type: 'string', default: '0.4' },
    threads: { type: 'string' },
    /** Most devices of a worker trained together in one tensor program. */
    batch: { type: 'string', default: '8' },
    out: { type: 'string', default: 'out/privacy-utility' },
    plot: { type: 'string', default: 'docs/privacy-utility.svg' },
    seed: { type: 'string', default: '1' },
    /** Keep the cells of an earlier run in --out (same N and rounds) and add these to its table and plot. */
    append: { type: 'boolean', default: false },
  },
});
const list = (s: string): number[] => s.split(',').filter(Boolean).map(Number);
const N = Number(v.population);
const rounds = Number(v.rounds);
const cohorts = list(v.cohorts);
const epsilons = list(v.epsilons);
const secCohort = Number(v['secagg-cohort']);
const secEpsilons = list(v['secagg-epsilons']);
const outDir = v.out;
const common: PopulationOptions = {
  population: N,
  rounds,
  lr: Number(v.lr),
  seed: Number(v.seed),
  serverOptimizer: { kind: v['server-opt'] as ServerOptimizerKind, lr: Number(v['server-lr']) },
  secAggPhaseTimeoutMs: Number(v['secagg-timeout']),
  clipNorm: Number(v.clip),
};
/**
 * Central DP divides the noised sum by a fixed denominator, cohortSize = q·N (the standard
 * unbiased-in-expectation DP-FedAvg estimator needs a fixed one), while on average only
 * q × (online devices) × (1 − dropout) = cohort × 0.8 × 0.95 devices contribute: the mean update
 * comes out shrunk by that ratio. The server learning rate of central-DP cells is scaled by
 * cohort / expected contributors, so every cell takes the same expected server step as the
 * non-private baseline (FedAvg over the actual contributors); the noise is scaled alike (ε is
 * unchanged: it is post-processing).
 */
const debiased = (cohort: number): PopulationOptions => {
  const expected = cohort * 0.8 * 0.95; // the fleet's default availability: online 0.8, dropout 0.05
  return { ...common, serverOptimizer: { ...(common.serverOptimizer as NonNullable<PopulationOptions['serverOptimizer']>), lr: Number(v['server-lr']) * (cohort / expected) } };
};

interface Cell {
  readonly key: string;
  readonly kind: 'non-private' | 'dp' | 'dp+secagg';
  readonly cohort: number;
  readonly epsilonTarget?: number;
  readonly program: PopulationProgram;
}
const grid = new Map<number, number[]>(v.grid ? [] : cohorts.map((c) => [c, epsilons]));
for (const part of (v.grid ?? '').split(';').filter(Boolean)) {
  const [c, es] = part.split(':');
  grid.set(Number(c), list(es ?? ''));
}
if (v.grid) cohorts.splice(0, cohorts.length, ...grid.keys());
const cells: Cell[] = [];
// order: per cohort the non-private baseline, then the largest ε first — so a partial run already
// answers the headline question (ε = 8 at every cohort) before the rest of the curve
const rest: Cell[] = [];
const secagg: Cell[] = [];
for (const c of cohorts) {
  cells.push({ key: `np-${c}`, kind: 'non-private', cohort: c, program: populationProgram(`np-${c}`, { ...common, cohort: c }) });
  const es = [...(grid.get(c) ?? [])].sort((a, b) => b - a);
  es.forEach((e, i) => (i === 0 ? cells : rest).push({ key: `dp-e${e}-${c}`, kind: 'dp', cohort: c, epsilonTarget: e, program: populationProgram(`dp-e${e}-${c}`, { ...debiased(c), cohort: c, privacy: 'dp', targetEpsilon: e }) }));
}
if (secCohort > 0) {
  if (!cohorts.includes(secCohort)) cells.push({ key: `np-${secCohort}`, kind: 'non-private', cohort: secCohort, program: populationProgram(`np-${secCohort}`, { ...common, cohort: secCohort }) });
  for (const e of secEpsilons) secagg.push({ key: `sa-e${e}-${secCohort}`, kind: 'dp+secagg', cohort: secCohort, epsilonTarget: e, program: populationProgram(`sa-e${e}-${secCohort}`, { ...common, cohort: secCohort, privacy: 'dp+secagg', targetEpsilon: e }) });
}

// SecAgg right after the cohorts up to its own (the largest cohort is the most expensive)
const upTo = cells.filter((c) => c.cohort <= secCohort);
cells.splice(0, cells.length, ...upTo, ...secagg, ...cells.filter((c) => c.cohort > secCohort), ...rest);
const log = (l: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${l}`);
const earlier: unknown[] = [];
const commands: string[] = [];
if (v.append && existsSync(join(outDir, 'results.json'))) {
  const prev = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8')) as { population: number; rounds: number; results: unknown[]; commands?: string[] };
  commands.push(...(prev.commands ?? []));
  if (prev.population !== N || prev.rounds !== rounds) throw new RangeError(`--append: ${outDir} holds a run with N = ${prev.population} and ${prev.rounds} rounds, not ${N} and ${rounds}`);
  earlier.push(...prev.results);
} else rmSync(outDir, { recursive: true, force: true });
commands.push(`node dist/examples/privacy-utility.js ${process.argv.slice(2).join(' ')}`);
mkdirSync(outDir, { recursive: true });
const t0 = performance.now();
log(`privacy–utility: N = ${N}, ${rounds} rounds, cohorts ${cohorts.join('/')}, ε ${epsilons.join('/')}, SecAgg at ${secCohort} (ε ${secEpsilons.join('/')}); ${cells.length} cells; server ${v['server-opt']} lr ${v['server-lr']}, device lr ${v.lr}`);
for (const c of cells) if (c.kind !== 'non-private') log(`  ${c.key}: z = ${c.program.z.toFixed(3)}, server lr ${c.program.spec.serverOptimizer.lr?.toFixed(3) ?? 'default'} (q = ${c.program.ledgerQ.toPrecision(3)}, δ = ${c.program.delta.toExponential(1)})`);
const fleet = await Fleet.start({ programs: cells.map((c) => c.program.spec), population: N, shards: parseShardScheme(v.shards), outDir: join(outDir, 'fleet'), seed: Number(v.seed), batch: Number(v.batch), ...(v.threads ? { threads: Number(v.threads) } : {}) });

interface Result {
  readonly key: string;
  readonly kind: Cell['kind'];
  readonly cohort: number;
  readonly epsilonTarget?: number;
  readonly epsilon: number;
  readonly z: number;
  readonly loss: number;
  readonly tinyStories: number;
  readonly forgetting: number;
  readonly gain: number;
  kept?: number;
  readonly seconds: number;
  readonly updatesPerSecond: number;
  readonly meanUpdates: number;
  /** Online devices that checked in, and those the coordinator sampled, per round (means). */
  readonly meanCheckIns: number;
  readonly meanSampled: number;
  readonly finalClip: number;
}
// an earlier run's cells (--append) are kept, and not run again
const results: Result[] = [...(earlier as Result[])];
try {
  const lora = cells[0].program.spec.lora;
  const base = fleet.evaluate('base only', lora);
  log(`base only: held-out ${base.mean.toFixed(3)}, TinyStories ${base.tinyStories.toFixed(3)}`);
  const save = (): void => {
    for (const r of results) {
      const np = results.find((x) => x.kind === 'non-private' && x.cohort === r.cohort);
      r.kept = np && np.gain > 0 ? r.gain / np.gain : undefined;
    }
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify({ population: N, rounds, base, settings: common, commands, results, totalSeconds: (performance.now() - t0) / 1000 }, null, 1)}\n`);
  };
  for (const c of cells) {
    if (results.some((r) => r.key === c.key)) continue;
    // each cell's program enrols the whole population just before it trains (q needs all N enrolled)
    const e = await fleet.enrol(c.program.spec.id);
    log(`enrolled ${e.devices} devices in ${c.program.spec.id} in ${e.seconds.toFixed(1)} s (${e.perSecond.toFixed(0)}/s)`);
    const tc = performance.now();
    const s = await trainPopulation(fleet, c.program, { outDir: join(outDir, c.key), baseOnly: base, progress: false, log });
    const r: Result = {
      key: c.key,
      kind: c.kind,
      cohort: c.cohort,
      epsilonTarget: c.epsilonTarget,
      epsilon: s.epsilon,
      z: c.program.z,
      loss: s.final.mean,
      tinyStories: s.final.tinyStories,
      forgetting: s.forgetting,
      gain: s.gain,
      seconds: (performance.now() - tc) / 1000,
      updatesPerSecond: s.updatesPerSecond,
      meanUpdates: s.rounds.length ? s.rounds.reduce((a, x) => a + x.updates, 0) / s.rounds.length : 0,
      meanCheckIns: s.rounds.length ? s.rounds.reduce((a, x) => a + x.checkIns, 0) / s.rounds.length : 0,
      meanSampled: s.rounds.length ? s.rounds.reduce((a, x) => a + x.sampled, 0) / s.rounds.length : 0,
      finalClip: s.rounds.length ? s.rounds[s.rounds.length - 1].clipNorm : Number.NaN,
    };
    results.push(r);
    save();
    log(`cell ${c.key}: held-out ${r.loss.toFixed(3)} (gain ${r.gain.toFixed(3)}), ε ${r.epsilon.toFixed(2)}, forgetting ${(r.forgetting * 100).toFixed(1)}%, ${r.seconds.toFixed(0)} s`);
  }
  save();

  // the table
  const pct = (x: number | undefined): string => (x === undefined ? '–' : `${(x * 100).toFixed(0)}%`);
  const lines = [
    `| cell | cohort | ε (target) | z | mean held-out loss | gain kept | TinyStories forgetting | check-ins / sampled / updates per round | wall time |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
    `| base only | – | – | – | ${base.mean.toFixed(3)} | – | – | – | – |`,
    ...[...results].sort((a, b) => a.cohort - b.cohort || (a.kind === b.kind ? 0 : a.kind === 'non-private' ? -1 : b.kind === 'non-private' ? 1 : a.kind === 'dp' ? -1 : 1) || (b.epsilonTarget ?? 0) - (a.epsilonTarget ?? 0)).map((r) => `| ${r.kind === 'non-private' ? 'non-private FedAvg' : r.kind === 'dp' ? 'DP-FedAvg (central)' : 'DP-FedAvg, SecAgg (distributed)'} | ${r.cohort} | ${r.kind === 'non-private' ? '∞' : `${r.epsilon.toFixed(2)} (${r.epsilonTarget})`} | ${r.kind === 'non-private' ? '–' : r.z.toFixed(3)} | ${r.loss.toFixed(3)} | ${r.kind === 'non-private' ? '100%' : pct(r.kept)} | ${(r.forgetting * 100).toFixed(1)}% | ${(r.meanCheckIns ?? 0).toFixed(0)} / ${(r.meanSampled ?? 0).toFixed(0)} / ${r.meanUpdates.toFixed(0)} | ${r.seconds.toFixed(0)} s |`),
  ];
  const table = lines.join('\n');

  // projection: the noise on the mean update is z·C/n; the accountant gives z for each cohort n at ε = 8
  const best = results.filter((r) => r.kind === 'dp' && r.epsilon <= 8.0001).reduce((m, r) => Math.max(m, r.kept ?? -Infinity), -Infinity);
  const delta = cells[0].program.delta;
  const zFor = (n: number, eps: number): number => calibrateSigma(n / N, rounds, eps, delta);
  const measured = results.filter((r) => r.kind === 'dp' && r.kept !== undefined).map((r) => ({ noise: r.z / r.cohort, kept: r.kept as number, key: r.key }));
  const sizes = [100, 200, 500, 1000, 2000, 5000, 10_000].filter((n) => n <= N);
  const projection = sizes.map((n) => ({ cohort: n, z8: zFor(n, 8), noisePerC: zFor(n, 8) / n }));
  // the measured kept share against noise z/n (per unit C): the smallest noise level that kept ≥ 70%, if any
  const ok = measured.filter((m) => m.kept >= 0.7).sort((a, b) => b.noise - a.noise)[0];
  const needNoise = ok?.noise;
  const needCohort = needNoise === undefined ? undefined : projection.find((p) => p.noisePerC <= needNoise)?.cohort;
  const projLines = [
    `| cohort n (q = n/N) | z at ε = 8 | noise on the mean update, z/n (× C) |`,
    `|---:|---:|---:|`,
    ...projection.map((p) => `| ${p.cohort} | ${p.z8.toFixed(3)} | ${p.noisePerC.toExponential(2)} |`),
  ].join('\n');
  const measuredLines = [`| cell | z/n (× C) | gain kept |`, `|---|---:|---:|`, ...measured.sort((a, b) => a.noise - b.noise).map((m) => `| ${m.key} | ${m.noise.toExponential(2)} | ${pct(m.kept)} |`)].join('\n');
  const md = [
    `# Privacy–utility (N = ${N}, ${rounds} rounds, ${v.shards} shards)`,
    '',
    `Commands: ${commands.map((c) => `\`${c}\``).join(', then ')}`,
    '',
    table,
    '',
    `Best share of the non-private gain kept at ε ≤ 8: ${Number.isFinite(best) ? pct(best) : '–'} (target 70%).`,
    '',
    'Measured: share kept against the noise on the mean update (z/n, in units of the clip norm):',
    '',
    measuredLines,
    '',
    'Projection (accountant): z needed for ε = 8 at each cohort size, and the noise it puts on the mean update:',
    '',
    projLines,
    '',
    needNoise === undefined ? 'No measured cell kept 70%: no noise level to project from.' : `The measured cells kept ≥ 70% at noise z/n ≤ ${needNoise.toExponential(2)}; at ε = 8 the accountant reaches that from a cohort of ${needCohort ?? `more than ${sizes[sizes.length - 1]}`}.`,
    '',
    `Total wall time ${((performance.now() - t0) / 60_000).toFixed(1)} min.`,
  ].join('\n');
  writeFileSync(join(outDir, 'table.md'), `${md}\n`);
  console.log(`\n${md}\n`);

  // the plot: loss against ε per cohort
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];
  const series = [...new Set(results.filter((r) => r.kind === 'dp').map((r) => r.cohort))].sort((a, b) => a - b).map((c, i) => ({
    label: `cohort ${c}`,
    color: colors[i % colors.length],
    points: results.filter((r) => r.kind === 'dp' && r.cohort === c).map((r) => [r.epsilon, r.loss] as const),
    nonPrivate: results.find((r) => r.kind === 'non-private' && r.cohort === c)?.loss,
  }));
  const sa = results.filter((r) => r.kind === 'dp+secagg');
  if (sa.length) series.push({ label: `SecAgg ${sa[0].cohort}`, color: '#8c564b', points: sa.map((r) => [r.epsilon, r.loss] as const), nonPrivate: undefined });
  const drawable = series.filter((s) => s.points.length > 0);
  if (drawable.length) {
    mkdirSync(dirname(v.plot), { recursive: true });
    writeFileSync(v.plot, lossVsEpsilonSvg(`fedtune: held-out loss vs ε (N = ${N}, ${rounds} rounds)`, drawable, base.mean));
    log(`plot: ${v.plot}`);
  }
} finally {
  await fleet.close();
}
