/**
 * SecAgg+ cost: per-device compute seconds, coordinator seconds (including mask removal) and
 * traffic expansion for n devices × d-dim updates at several dropout rates, driving the
 * in-process state machines of privacy/secagg the way test/privacy/secagg drives a round:
 * advertise → (coordinator checks adverts) → shareKeys → routeShares → receiveShares →
 * maskedInput → unmaskRequest → unmask → finish. Everything runs in one process, one party at
 * a time, so each party's time is timed directly.
 *
 * Dropout is the case the protocol has to recover from: the dropped devices advertised and
 * shared their keys (they are in U₁, so their neighbours mask with them) but never send a
 * masked input; the coordinator then rebuilds each dropped device's mask key from its
 * surviving neighbours' shares and removes its pairwise masks, and rebuilds every survivor's
 * self mask. Dropped devices are a seeded random ⌊δn⌋ of the ids.
 *
 * Neighbours k and threshold t: the library has no defaults. t = k/2 + 1 (the smallest the
 * library allows, k/2 < t ≤ k, so the most dropout-tolerant), and k is the smallest even k for
 * which, at the worst dropout rate measured (δ = 0.3, independent), the union bound
 * n · P[Binomial(k, 1 − δ) < t] that some device keeps fewer than t surviving neighbours is
 * ≤ 1e-2 (capped at n − 1 or n − 2, to stay even). That makes k grow as O(log n) but with a large
 * constant, because t must exceed k/2; --k / --t override.
 *
 * Traffic is counted with a minimal wire encoding (the library has none): ids 4 bytes, keys 32,
 * signatures 64, Shamir shares 66 (521 bits), the round id as UTF-8; share messages as their
 * sealed bytes + from/to; the masked input 4 bytes per value. A device downloads only what
 * SecAgg+ needs it to: its neighbours' adverts, the share messages addressed to it, which of its
 * neighbours are in U₁, and the unmask request's entries for its neighbours. Expansion divides
 * by the 4·d bytes of the device's fixed-point encoded update (Z_(2^32)), which here is also the
 * size of its plain fp32 update.
 *
 * Coordinator time is reported as wall time and as process CPU time (user + system) spent in
 * its calls; on a shared machine the second is the steadier measure.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/secagg.js [--ns 100,500] [--dim 100000]
 *      [--dropouts 0,0.1,0.3] [--k K] [--t T]
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import nacl from 'tweetnacl';
import { seededRng } from '../random/rng.js';
import { fixedPointScale, SecAggCoordinator, SecAggDevice, neighbourGraph, type SecAggParams, type ShareMessage, type UnmaskResponse } from '../privacy/secagg/index.js';

const { values: args } = parseArgs({
  options: {
    ns: { type: 'string', default: '100,500' },
    dim: { type: 'string', default: '100000' },
    dropouts: { type: 'string', default: '0,0.1,0.3' },
    k: { type: 'string' },
    t: { type: 'string' },
  },
});

const machine = (): string => `${cpus().length} cores (${cpus()[0]?.model.trim()}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** P[X < t] for X ~ Binomial(k, p). */
function binomialBelow(k: number, p: number, t: number): number {
  let s = 0;
  let logC = 0;
  for (let x = 0; x < t; x++) {
    if (x > 0) logC += Math.log((k - x + 1) / x);
    s += Math.exp(logC + x * Math.log(p) + (k - x) * Math.log(1 - p));
  }
  return s;
}

/** k and t as documented above. */
export function chooseK(n: number, worstDropout = 0.3, eps = 1e-2): { k: number; t: number; unionBound: number } {
  const kMax = (n - 1) % 2 === 0 ? n - 1 : n - 2;
  for (let k = 4; k <= kMax; k += 2) {
    const t = k / 2 + 1;
    const u = n * binomialBelow(k, 1 - worstDropout, t);
    if (u <= eps) return { k, t, unionBound: u };
  }
  return { k: kMax, t: kMax / 2 + 1, unionBound: n * binomialBelow(kMax, 1 - worstDropout, kMax / 2 + 1) };
}

const PHASES = ['advertise', 'shareKeys', 'receiveShares', 'maskedInput', 'unmask'] as const;
type Phase = (typeof PHASES)[number];

interface Row {
  n: number;
  d: number;
  k: number;
  t: number;
  dropout: number;
  dropped: number;
  deviceS: number;
  deviceMaxS: number;
  devicePhases: Record<Phase, number>;
  droppedDeviceS: number;
  coordS: number;
  coordFinishS: number;
  coordCpuS: number;
  coordFinishCpuS: number;
  coordAdvertsS: number;
  upBytes: number;
  downBytes: number;
  upExpansion: number;
  downExpansion: number;
  exact: boolean;
  maxErrVsFp32: number;
  wallS: number;
  ok: boolean;
  reason?: string;
}

/** Seeded update in [-1, 1] (no allocation beyond the array). */
function update(id: number, d: number): Float32Array {
  const u = new Float32Array(d);
  let s = (id * 2654435761) >>> 0 || 1;
  for (let i = 0; i < d; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u[i] = Math.max(-1, Math.min(1, (s / 2 ** 32 - 0.5) * 1.6));
  }
  return u;
}

function runConfig(n: number, d: number, dropout: number, k: number, t: number): Row {
  const tWall = performance.now();
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const roundId = `bench-${n}-${dropout}`;
  const params: SecAggParams = { roundId, ids, k, threshold: t, length: d, scale: fixedPointScale(1, n), graphSeed: 7 };
  const signing = new Map(ids.map((id) => [id, nacl.sign.keyPair.fromSeed(Uint8Array.from({ length: 32 }, (_, i) => (id * 31 + i) & 0xff))]));
  const signKeys = new Map(ids.map((id) => [id, signing.get(id)!.publicKey]));
  // which devices drop (after sharing keys, before the masked input)
  const order = [...ids];
  const r = seededRng(1234 + n);
  for (let i = order.length - 1; i > 0; i--) {
    const j = r.nextU32() % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const dropped = new Set(order.slice(0, Math.floor(dropout * n)));
  const graph = neighbourGraph(ids, k, params.graphSeed);

  const devTime = new Map<number, Record<Phase, number>>(ids.map((id) => [id, { advertise: 0, shareKeys: 0, receiveShares: 0, maskedInput: 0, unmask: 0 }]));
  const up = new Map<number, number>(ids.map((id) => [id, 0]));
  const down = new Map<number, number>(ids.map((id) => [id, 0]));
  const timeDev = <T>(id: number, phase: Phase, fn: () => T): T => {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      devTime.get(id)![phase] += (performance.now() - t0) / 1000;
    }
  };
  let coordS = 0;
  let coordCpuS = 0; // process CPU time (user + system) in the coordinator's calls: less sensitive to other jobs on the machine than wall time
  const timeCoord = <T>(fn: () => T): T => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    try {
      return fn();
    } finally {
      coordS += (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      coordCpuS += (c.user + c.system) / 1e6;
    }
  };
  const advertBytes = 4 + new TextEncoder().encode(roundId).length + 32 + 32 + 64;
  const msgBytes = (m: ShareMessage): number => 8 + m.sealed.length;

  const coord = timeCoord(() => new SecAggCoordinator(params, signKeys));
  // 1. adverts
  const devices = new Map<number, SecAggDevice>();
  let coordAdvertsS = 0;
  for (const id of ids) {
    const a = timeDev(id, 'advertise', () => {
      const dev = new SecAggDevice(id, params, signing.get(id)!.secretKey, seededRng(1000 + id));
      devices.set(id, dev);
      return dev.advertise();
    });
    up.set(id, up.get(id)! + advertBytes);
    const t0 = coordS;
    if (!timeCoord(() => coord.acceptAdvert(a))) throw new Error(`advert of ${id} refused`);
    coordAdvertsS += coordS - t0;
  }
  const adverts = timeCoord(() => coord.advertsForDevices());
  // 2. key shares
  const msgs: ShareMessage[] = [];
  for (const id of ids) {
    down.set(id, down.get(id)! + k * advertBytes); // its neighbours' adverts
    const out = timeDev(id, 'shareKeys', () => devices.get(id)!.shareKeys(adverts, signKeys));
    for (const m of out) up.set(id, up.get(id)! + msgBytes(m));
    msgs.push(...out);
  }
  const routed = timeCoord(() => coord.routeShares(msgs));
  const senders = timeCoord(() => coord.senders());
  const senderSet = new Set(senders);
  for (const id of ids) {
    const mine = routed.get(id) ?? [];
    down.set(id, down.get(id)! + mine.reduce((s, m) => s + msgBytes(m), 0) + 4 * graph.get(id)!.filter((v) => senderSet.has(v)).length);
    timeDev(id, 'receiveShares', () => devices.get(id)!.receiveShares(mine, senders));
  }
  // 3. masked inputs (dropped devices never send one); the plaintext sums to check against
  const expectedInt = new Float64Array(d); // Σ round(x·scale), exact in float64 (|Σ| < 2^31)
  const expectedF = new Float64Array(d); // Σ x in fp32 → float64
  for (const id of ids) {
    if (dropped.has(id)) continue;
    const x = update(id, d);
    for (let i = 0; i < d; i++) {
      expectedInt[i] += Math.round(x[i] * params.scale);
      expectedF[i] += x[i];
    }
    const y = timeDev(id, 'maskedInput', () => devices.get(id)!.maskedInput(x));
    up.set(id, up.get(id)! + 4 * y.length);
    if (!timeCoord(() => coord.acceptMaskedInput(id, y))) throw new Error(`masked input of ${id} refused`);
  }
  // 4. unmask
  const req = timeCoord(() => coord.unmaskRequest());
  const sm = new Set(req.selfMaskOf);
  const ko = new Set(req.keyOf);
  const responses: UnmaskResponse[] = [];
  for (const id of ids) {
    if (dropped.has(id)) continue;
    const nb = graph.get(id)!;
    down.set(id, down.get(id)! + 4 * nb.filter((v) => sm.has(v) || ko.has(v)).length);
    const resp = timeDev(id, 'unmask', () => devices.get(id)!.unmask(req));
    up.set(id, up.get(id)! + 4 + 70 * (resp.selfMask.size + resp.key.size));
    responses.push(resp);
  }
  const c0 = coordS;
  const cpu0 = coordCpuS;
  const result = timeCoord(() => coord.finish(responses));
  const coordFinishS = coordS - c0;
  const coordFinishCpuS = coordCpuS - cpu0;

  let exact = result.ok;
  let maxErr = 0;
  if (result.ok) {
    for (let i = 0; i < d; i++) {
      if (result.sum[i] !== Math.fround(expectedInt[i] / params.scale)) exact = false;
      maxErr = Math.max(maxErr, Math.abs(result.sum[i] - expectedF[i]));
    }
  }
  const survivors = ids.filter((id) => !dropped.has(id));
  const total = (id: number): number => PHASES.reduce((s, p) => s + devTime.get(id)![p], 0);
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const phases = Object.fromEntries(PHASES.map((p) => [p, mean(survivors.map((id) => devTime.get(id)![p]))])) as Record<Phase, number>;
  return {
    n,
    d,
    k,
    t,
    dropout,
    dropped: dropped.size,
    deviceS: mean(survivors.map(total)),
    deviceMaxS: Math.max(...survivors.map(total)),
    devicePhases: phases,
    droppedDeviceS: mean([...dropped].map(total)),
    coordS,
    coordFinishS,
    coordCpuS,
    coordFinishCpuS,
    coordAdvertsS,
    upBytes: mean(survivors.map((id) => up.get(id)!)),
    downBytes: mean(survivors.map((id) => down.get(id)!)),
    upExpansion: mean(survivors.map((id) => up.get(id)!)) / (4 * d),
    downExpansion: mean(survivors.map((id) => down.get(id)!)) / (4 * d),
    exact,
    maxErrVsFp32: maxErr,
    wallS: (performance.now() - tWall) / 1000,
    ok: result.ok,
    reason: result.ok ? undefined : result.reason,
  };
}

function main(): void {
  const ns = String(args.ns).split(',').map(Number);
  const d = Number(args.dim);
  const dropouts = String(args.dropouts).split(',').map(Number);
  console.log(`SecAgg+ — ${d}-dim updates; ${machine()}\n`);
  const rows: Row[] = [];
  console.log('| n | k | t | dropout | dropped | device s (mean, survivor) | device s (max) | dropped device s | coordinator s | of which finish (unmask) s | coordinator CPU s | finish CPU s | of which advert checks s | upload expansion | download expansion | sum exact | max err vs fp32 sum | wall s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const n of ns) {
    const auto = chooseK(n);
    const k = args.k ? Number(args.k) : auto.k;
    const t = args.t ? Number(args.t) : args.k ? k / 2 + 1 : auto.t;
    for (const dropout of dropouts) {
      const row = runConfig(n, d, dropout, k, t);
      rows.push(row);
      console.log(
        `| ${n} | ${k} | ${t} | ${f(100 * dropout, 0)}% | ${row.dropped} | ${f(row.deviceS, 3)} | ${f(row.deviceMaxS, 3)} | ${f(row.droppedDeviceS, 3)} | ${f(row.coordS, 2)} | ${f(row.coordFinishS, 2)} | ${f(row.coordCpuS, 2)} | ${f(row.coordFinishCpuS, 2)} | ${f(row.coordAdvertsS, 2)} | ${f(row.upExpansion, 4)}× | ${f(row.downExpansion, 4)}× | ${row.ok ? (row.exact ? 'yes' : 'NO') : `failed: ${row.reason}`} | ${row.maxErrVsFp32.toExponential(1)} | ${f(row.wallS, 1)} |`,
      );
    }
  }
  console.log('\nper-device phases (mean over surviving devices, s):\n');
  console.log(`| n | dropout | ${PHASES.join(' | ')} |`);
  console.log(`|---|---|${PHASES.map(() => '---|').join('')}`);
  for (const r of rows) console.log(`| ${r.n} | ${f(100 * r.dropout, 0)}% | ${PHASES.map((p) => f(r.devicePhases[p], 4)).join(' | ')} |`);
  console.log(
    `\n${JSON.stringify({
      bench: 'secagg',
      dim: d,
      rows: rows.map((r) => ({
        n: r.n,
        k: r.k,
        t: r.t,
        dropout: r.dropout,
        dropped: r.dropped,
        deviceS: +r.deviceS.toFixed(4),
        deviceMaxS: +r.deviceMaxS.toFixed(4),
        droppedDeviceS: +r.droppedDeviceS.toFixed(4),
        devicePhases: Object.fromEntries(PHASES.map((p) => [p, +r.devicePhases[p].toFixed(5)])),
        coordS: +r.coordS.toFixed(3),
        coordFinishS: +r.coordFinishS.toFixed(3),
        coordCpuS: +r.coordCpuS.toFixed(3),
        coordFinishCpuS: +r.coordFinishCpuS.toFixed(3),
        coordAdvertsS: +r.coordAdvertsS.toFixed(3),
        upBytes: Math.round(r.upBytes),
        downBytes: Math.round(r.downBytes),
        upExpansion: +r.upExpansion.toFixed(5),
        downExpansion: +r.downExpansion.toFixed(5),
        exact: r.exact,
        ok: r.ok,
        maxErrVsFp32: r.maxErrVsFp32,
        wallS: +r.wallS.toFixed(1),
      })),
      machine: machine(),
    })}`,
  );
}

main();
