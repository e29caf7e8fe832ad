/**
 * Fleet throughput, end to end: a population of virtual devices (default 10,000) enrolled with a
 * real coordinator over loopback gRPC; each round every device checks in (one signed CheckIn),
 * the coordinator's Poisson coins (q = cohort / N, default cohort 200) pick who works, and the
 * sampled devices train through the real Device library in worker threads — stories260K int8,
 * LoRA rank 4 on wq,wv,wo,w2, one local step of 4 × 64 tokens, the devices of a worker that
 * train at the same time batched into one tensor program (--batch; 1 = each alone) — and upload
 * a sealed update; the round closes when every sampled device has answered. Reports
 * device-updates per second (round open → last answer, the check-ins of the whole population
 * and the coordinator included), the check-in phase's share, what bounds it (workers' and the
 * coordinator thread's busy shares), enrolment rate, RSS, and what an idle device costs.
 * Everyone online, no dropouts, no DP: the throughput of the pipeline itself. --compare-batch K
 * alternates rounds between --batch and K in the same run.
 *
 * Run: npm run bench:fleet [-- --population 10000 --cohort 200 --rounds 3 --threads 2 --concurrency 16 --batch 8 --linger 0 --compare-batch 1]
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend, LocalTrainer, LoraAdapter, openBase } from '../model/index.js';
import { Fleet, loadDomains, populationProgram } from '../sim/index.js';

const { values: v } = parseArgs({
  options: {
    population: { type: 'string', default: '10000' },
    cohort: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '16' },
    'check-ins': { type: 'string', default: '64' },
    batch: { type: 'string', default: '8' },
    'compare-batch': { type: 'string' },
    linger: { type: 'string', default: '0' },
    channels: { type: 'string', default: '2' },
    out: { type: 'string', default: 'out/bench-fleet' },
  },
});
const N = Number(v.population);
const rounds = Number(v.rounds);
const threads = Number(v.threads);
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`fleet throughput: ${N} devices, cohort ≈ ${v.cohort}, ${rounds} rounds, ${threads} worker threads × ${v.concurrency} devices at once (batches of ≤ ${v.batch}, linger ${v.linger} ms), ${v['check-ins']} check-ins in flight per worker; load average at start ${load()}`);
const program = populationProgram('bench', { population: N, cohort: Number(v.cohort), rounds });
// what one device's local step costs alone (same recipe, this thread, before the fleet starts)
await initBackend();
const { base, tokenizer } = openBase(program.spec.basePath, 'int8', { tokenizerPath: program.spec.tokenizerPath, seed: 1 });
const toks = tokenizer.encode(loadDomains({ devicesPerDomain: 1, domains: ['oz'] })[0].devices[0].text.slice(0, 4000), { bos: false });
const stepMs: number[] = [];
for (let i = 0; i < 12; i++) {
  const a = LoraAdapter.create(base.config, base.sha256, program.spec.lora);
  const t = performance.now();
  await new LocalTrainer(base, a, toks, { ...program.spec.training, startId: tokenizer.startId, seed: i }).run();
  if (i >= 2) stepMs.push(performance.now() - t);
  a.dispose();
}
base.dispose();
const step = stepMs.sort((a, b) => a - b)[stepMs.length >> 1];
console.log(`one local step alone (4×64 tokens, median of 10): ${step.toFixed(0)} ms → training alone bounds ${threads} threads at ${((threads * 1000) / step).toFixed(1)} updates/s (load ${load()})`);
rmSync(v.out, { recursive: true, force: true });
const rss0 = process.memoryUsage().rss;
const fleet = await Fleet.start({ programs: [program.spec], population: N, outDir: v.out, threads, concurrency: Number(v.concurrency), checkInConcurrency: Number(v['check-ins']), batch: Number(v.batch), batchLingerMs: Number(v.linger), channels: Number(v.channels), online: 1, dropout: 0 });
try {
  const rssStarted = process.memoryUsage().rss;
  const e = await fleet.enrol('bench');
  console.log(`enrolment: ${e.devices} devices in ${e.seconds.toFixed(1)} s = ${e.perSecond.toFixed(0)}/s (load ${load()})`);
  console.log(`idle devices: population tables ${(fleet.tableBytes() / 1024).toFixed(0)} KiB = ${((fleet.tableBytes() / N) * 10_000 / 1024).toFixed(0)} KiB per 10,000 devices (RSS growth while building them: ${((fleet.tablesRssBytes / N) * 10_000 / 2 ** 20).toFixed(2)} MiB per 10,000); RSS ${(rss0 / 2 ** 20).toFixed(0)} MiB before, ${(rssStarted / 2 ** 20).toFixed(0)} MiB with coordinator + ${threads} workers, ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB after enrolment`);
  console.log('\n| round | batch | check-ins | sampled | updates | batched (cohorts, largest) | check-in phase s | round s | updates/s | worker threads busy | coordinator thread busy | load avg (1 min) |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const perBatch = new Map<number, { counts: { uploaded: number }; seconds: number; round: number }[]>();
  let updates = 0;
  let seconds = 0;
  let train = 0;
  for (let r = 0; r < rounds; r++) {
    // with --compare-batch, odd rounds run at --batch and even ones at the other size
    const batch = v['compare-batch'] !== undefined && r % 2 === 1 ? Number(v['compare-batch']) : Number(v.batch);
    const x = await fleet.runRound('bench', undefined, { batch });
    if (!x) break;
    perBatch.set(batch, [...(perBatch.get(batch) ?? []), x]);
    updates += x.counts.uploaded;
    seconds += x.seconds;
    train += x.trainSeconds;
    console.log(`| ${x.round} | ${batch} | ${x.checkIns} | ${x.sampled} | ${x.counts.uploaded} | ${x.batched.runs} (${x.batched.cohorts}, ${x.batched.largest}) | ${x.checkInSeconds.toFixed(1)} | ${x.seconds.toFixed(1)} | ${(x.counts.uploaded / x.seconds).toFixed(1)} | ${x.workerBusy.map((b) => `${(b * 100).toFixed(0)}%`).join(' / ')} | ${(x.mainThreadBusy * 100).toFixed(0)}% | ${loadavg()[0].toFixed(2)} |`);
  }
  // round 1 pays the JIT warm-up: the comparison leaves it out
  for (const [b, xs] of perBatch) {
    const later = xs.filter((x) => x.round > 1);
    if (later.length) console.log(`batch ${b}: ${later.reduce((a, x) => a + x.counts.uploaded, 0)} updates in ${later.reduce((a, x) => a + x.seconds, 0).toFixed(1)} s = ${(later.reduce((a, x) => a + x.counts.uploaded, 0) / later.reduce((a, x) => a + x.seconds, 0)).toFixed(1)} device-updates/s (rounds ${later.map((x) => x.round).join(', ')})`);
  }
  console.log(`\noverall: ${updates} updates in ${seconds.toFixed(1)} s = ${(updates / seconds).toFixed(1)} device-updates/s;  devices' trainer wall time ${((train / updates) * 1000).toFixed(0)} ms per update (devices of a worker interleave); RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB; load average at end ${load()}`);
} finally {
  await fleet.close();
}
