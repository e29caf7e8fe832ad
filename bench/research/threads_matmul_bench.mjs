// node bench/research/threads_matmul_bench.mjs 2   (0 = single-threaded wasm); run npm run build first
import { tf, timeIt, initWasm } from './common.mjs';
import { startThreadedWasm as initWasmThreaded, terminateWasmThreads } from '../../dist/model/index.js';
const nt = +process.argv[2];
const n = nt > 0 ? await initWasmThreaded(nt) : (await initWasm(), 1);

console.log('threads', n);
const a = tf.randomNormal([1024,1024]), b = tf.randomNormal([1024,1024]);
for (const [name, f] of [['matMul 1024', () => tf.matMul(a,b)], ['matMul fresh b', () => tf.matMul(a, tf.add(b, 0))], ['add 1M x20', () => { let x=a; for(let i=0;i<20;i++) x=tf.add(x,b); return x; }],
  ['conv2d', () => tf.conv2d(tf.reshape(a,[1,256,256,16]), tf.ones([3,3,16,64]), 1, 'same')]]) {
  const c0 = process.cpuUsage(); const w0 = performance.now();
  const ms = timeIt(f, { minMs: 1500 });
  const cpu = process.cpuUsage(c0); const wall = performance.now() - w0;
  console.log(name.padEnd(16), ms.toFixed(2), 'ms', ' cpu/wall', ((cpu.user+cpu.system)/1000/wall).toFixed(2));
}
terminateWasmThreads();
