// Usage (after npm run build): [FAST_SLICE=1] [SMALLT=1] [THREADS=2] node bench/research/attn_bmm_bench.mjs [method,...]
// Compares ways to run attention-shaped batched matMuls (and their gradients) on wasm.
import { tf, initWasm, timeIt } from './common.mjs';
import { methods, withGrad as withGrad0, withGradSmallT } from './bmm_methods.mjs';
const withGrad = process.env.SMALLT === '1' ? withGradSmallT : withGrad0;
import { installWasmKernels, startThreadedWasm, terminateWasmThreads } from '../../dist/model/index.js';
if (process.env.THREADS) console.log('threads', await startThreadedWasm(+process.env.THREADS)); else await initWasm();
if (process.env.FAST_SLICE === '1') { installWasmKernels(); console.log('fast slice installed'); }
const shapes = [[64, 128, 32], [64, 256, 8], [64, 64, 8]];
const sel = process.argv[2] ? process.argv[2].split(',') : Object.keys(methods);
const g = (fl, ms) => (fl / ms / 1e6).toFixed(2);
// correctness reference (stock) on the smallest shape
{
  const [B, T, hs] = [4, 16, 8];
  const Q = tf.randomNormal([B, T, hs]), K = tf.randomNormal([B, T, hs]), P = tf.randomNormal([B, T, T]);
  const ref1 = tf.matMul(Q, K, false, true), ref2 = tf.matMul(P, Q);
  const rg = tf.grads((q, k, v) => tf.matMul(tf.matMul(q, k, false, true), v))([Q, K, Q]);
  for (const name of sel) {
    const M = methods[name], W = withGrad(M);
    const e1 = tf.max(tf.abs(tf.sub(M.nt(Q, K), ref1))).dataSync()[0];
    const e2 = tf.max(tf.abs(tf.sub(M.nn(P, Q), ref2))).dataSync()[0];
    const gg = tf.grads((q, k, v) => W.nn(W.nt(q, k), v))([Q, K, Q]);
    const e3 = Math.max(...gg.map((x, i) => tf.max(tf.abs(tf.sub(x, rg[i]))).dataSync()[0]));
    console.log(`check ${name}: nt err ${e1.toExponential(1)} nn err ${e2.toExponential(1)} grad err ${e3.toExponential(1)}`);
  }
}
console.log('method   shape(BH,T,hs)  QK^T fwd  PV fwd  | attn fwd+bwd (GFLOP/s, ms)');
for (const [B, T, hs] of shapes) {
  const Q = tf.randomNormal([B, T, hs]), K = tf.randomNormal([B, T, hs]), V = tf.randomNormal([B, T, hs]);
  const P = tf.randomUniform([B, T, T]), dO = tf.randomNormal([B, T, hs]);
  const fl = 2 * B * T * T * hs;
  for (const name of sel) {
    const M = methods[name], W = withGrad(M);
    const t1 = timeIt(() => M.nt(Q, K), { minMs: 800 });
    const t2 = timeIt(() => M.nn(P, V), { minMs: 800 });
    const gf = tf.grads((q, k, v) => W.nn(W.nt(q, k), v));
    const t3 = timeIt(() => gf([Q, K, V], dO), { minMs: 1500, maxIters: 30 });
    console.log(`${name.padEnd(8)} ${String([B, T, hs]).padEnd(14)} ${g(fl, t1).padStart(8)} ${g(fl, t2).padStart(7)}  | ${g(6 * fl, t3).padStart(6)} GF/s ${t3.toFixed(1)} ms`);
  }
}

terminateWasmThreads();
