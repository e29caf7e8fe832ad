// Shared helpers for wasm research benchmarks.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
export { tf };
export async function initWasm() {
  await tf.setBackend('wasm');
  await tf.ready();
  return tf.getBackend();
}
// Time fn (which returns a tensor or array of tensors); returns ms/iter (median)
export function timeIt(fn, { minMs = 1500, warm = 2, maxIters = 200 } = {}) {
  for (let i = 0; i < warm; i++) { const r = tf.tidy(fn); sync(r); tf.dispose(r); }
  const times = []; let total = 0;
  while ((total < minMs && times.length < maxIters) || times.length < 3) {
    const t0 = performance.now();
    const r = tf.tidy(fn); sync(r);
    const dt = performance.now() - t0; tf.dispose(r);
    times.push(dt); total += dt;
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
function sync(r) { (Array.isArray(r) ? r : [r]).forEach(t => t.dataSync()); }
