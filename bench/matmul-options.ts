/**
 * The compute options for the device training step, measured side by side: tf.matMul GFLOP/s on
 * the wasm backend (XNNPACK SIMD, 1 thread and the threaded build with 2) and through fedtune's
 * native SGEMM kernel (native/, 1 and 2 threads), at 1024³ and at the issue-15 step's largest
 * shape; plus whether this Node validates wasm relaxed SIMD (with and without its flag). Each case
 * runs in its own process, cases alternating, `rounds` times. GFLOP/s per wall second and per
 * CPU second (the latter is steadier on a shared machine).
 * Run: npm run build && node dist/bench/matmul-options.js [rounds=2]
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, terminateWasmThreads } from '../model/index.js';

const CASES = ['wasm-1', 'native-1', 'wasm-2', 'native-2'] as const;
const SHAPES: [number, number, number][] = [[1024, 1024, 1024], [1024, 688, 256]];

/** f32x4.relaxed_madd(a, b, c) as a one-function module. */
const RELAXED = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b, 3, 2, 1, 0, 0x0a, 13, 1, 11, 0, 0x20, 0, 0x20, 1, 0x20, 2, 0xfd, 0x85, 0x02, 0x0b]);

async function child(caseName: string): Promise<void> {
  if (caseName === 'relaxed') {
    process.stdout.write(`${JSON.stringify({ relaxed: WebAssembly.validate(RELAXED) })}\n`);
    return;
  }
  const [kind, threads] = caseName.split('-');
  const info = await initBackend('wasm', { threads: Number(threads), native: kind === 'native' });
  const out: Record<string, { wall: number; cpu: number }> = {};
  for (const [m, n, k] of SHAPES) {
    tf.tidy(() => {
      const a = tf.randomNormal([m, k]);
      const b = tf.randomNormal([k, n]);
      tf.matMul(a, b).dataSync();
      const reps = Math.max(4, Math.round(4e9 / (2 * m * n * k)));
      const u0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) tf.tidy(() => void tf.matMul(a, b).dataSync());
      const wall = (performance.now() - t0) / 1e3;
      const u = process.cpuUsage(u0);
      const flop = 2 * m * n * k * reps;
      out[`${m}x${k}·${k}x${n}`] = { wall: flop / wall / 1e9, cpu: flop / ((u.user + u.system) / 1e6) / 1e9 };
    });
  }
  process.stdout.write(`${JSON.stringify({ backend: info.description, out })}\n`);
}

async function main(): Promise<void> {
  const [, , cmd, arg] = process.argv;
  if (cmd === 'child') {
    await child(arg);
    terminateWasmThreads();
    return;
  }
  const rounds = Number(cmd ?? 2);
  const load0 = loadavg();
  const acc: Record<string, { backend: string; wall: number[]; cpu: number[] }> = {};
  for (let r = 0; r < rounds; r++) {
    for (const cs of CASES) {
      const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', cs], { encoding: 'utf8' });
      if (p.status !== 0) throw new Error(p.stderr);
      const j = JSON.parse(p.stdout.trim().split('\n').pop()!) as { backend: string; out: Record<string, { wall: number; cpu: number }> };
      for (const [shape, v] of Object.entries(j.out)) {
        const key = `${cs}|${shape}`;
        acc[key] ??= { backend: j.backend, wall: [], cpu: [] };
        acc[key].wall.push(v.wall);
        acc[key].cpu.push(v.cpu);
      }
    }
  }
  const relaxed = (flags: string[]): boolean => {
    const p = spawnSync(process.execPath, [...flags, fileURLToPath(import.meta.url), 'child', 'relaxed'], { encoding: 'utf8' });
    return p.status === 0 && (JSON.parse(p.stdout.trim()) as { relaxed: boolean }).relaxed;
  };
  const mean = (x: number[]): number => x.reduce((s, v) => s + v, 0) / x.length;
  console.log(`${cpus().length} cores (${cpus()[0]?.model.trim()}), Node ${process.version}; load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${rounds} rounds`);
  console.log('| case | product | GFLOP/s (wall) | GFLOP/s (per CPU second) | backend |');
  console.log('|---|---|---|---|---|');
  for (const [key, v] of Object.entries(acc)) {
    const [cs, shape] = key.split('|');
    console.log(`| ${cs} | ${shape} | ${mean(v.wall).toFixed(1)} | ${mean(v.cpu).toFixed(1)} | ${v.backend} |`);
  }
  console.log(`wasm relaxed SIMD (f32x4.relaxed_madd) validates: ${relaxed([])} by default, ${relaxed(['--experimental-wasm-relaxed-simd'])} with --experimental-wasm-relaxed-simd`);
}

await main();
