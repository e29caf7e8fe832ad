// Batched-matmul implementations for the wasm backend.
// nt(a[B,m,k], b[B,n,k]) -> a @ b^T : [B,m,n]     nn(a[B,m,k], c[B,k,n]) -> a @ c : [B,m,n]
import { tf } from './common.mjs';
const tr = (x) => tf.transpose(x, [0, 2, 1]);

export const methods = {
  // stock kernels (transposed flag => slow strided loop)
  stock: { nt: (a, b) => tf.matMul(a, b, false, true), nn: (a, c) => tf.matMul(a, c), stockGrad: true },
  // stock batched kernel but never with transpose flags
  stockT: { nt: (a, b) => tf.matMul(a, tr(b)), nn: (a, c) => tf.matMul(a, c) },
  // per-slice 2D matMul via unstack (XNNPACK fully-connected path, batch==1)
  unstack: {
    nt: (a, b) => { const as = tf.unstack(a), bs = tf.unstack(tr(b)); return tf.stack(as.map((x, i) => tf.matMul(x, bs[i]))); },
    nn: (a, c) => { const as = tf.unstack(a), cs = tf.unstack(c); return tf.stack(as.map((x, i) => tf.matMul(x, cs[i]))); },
  },
  // per-slice via split along batch (rank-3 [1,m,k] slices, no reshape), concat
  split: {
    nt: (a, b) => { const n = a.shape[0]; const as = tf.split(a, n, 0), bs = tf.split(tr(b), n, 0); return tf.concat(as.map((x, i) => tf.matMul(x, bs[i])), 0); },
    nn: (a, c) => { const n = a.shape[0]; const as = tf.split(a, n, 0), cs = tf.split(c, n, 0); return tf.concat(as.map((x, i) => tf.matMul(x, cs[i])), 0); },
  },
  // broadcast multiply + reduce over last axis
  bcast: {
    nt: (a, b) => tf.sum(tf.mul(tf.expandDims(a, 2), tf.expandDims(b, 1)), -1),
    nn: (a, c) => tf.sum(tf.mul(tf.expandDims(a, 2), tf.expandDims(tr(c), 1)), -1),
  },
  // depthwise conv trick: channels = batch, channelMultiplier = n, kernel 1 x k, valid
  dwconv: {
    nt: (a, b) => dw(a, tf.transpose(b, [2, 0, 1])),
    nn: (a, c) => dw(a, tf.transpose(c, [1, 0, 2])),
  },
};
// a[B,m,k], f[k,B,n] -> [B,m,n]
function dw(a, f) {
  const [B, m, k] = a.shape; const n = f.shape[2];
  const x = tf.reshape(tf.transpose(a, [1, 2, 0]), [1, m, k, B]);
  const y = tf.depthwiseConv2d(x, tf.reshape(f, [1, k, B, n]), 1, 'valid'); // [1,m,1,B*n]
  return tf.transpose(tf.reshape(y, [m, B, n]), [1, 0, 2]);
}

// Wrap a method with customGrad whose backward uses the same method's nt/nn.
export function withGrad(M) {
  if (M.stockGrad) return { nt: M.nt, nn: M.nn };
  const nt = tf.customGrad((a, b, save) => {
    save([a, b]);
    return { value: M.nt(a, b), gradFunc: (dy, [a, b]) => [M.nn(dy, b), M.nn(tr(dy), a)] };
  });
  const nn = tf.customGrad((a, c, save) => {
    save([a, c]);
    return { value: M.nn(a, c), gradFunc: (dy, [a, c]) => [M.nt(dy, c), M.nn(tr(a), dy)] };
  });
  return { nt, nn };
}

// Variant whose backward never transposes the big [B,T,T] tensor (only [B,T,hs]-sized
// operands/results are transposed):  for S = A B^T : dA = dS B,  dB = (A^T dS)^T
//                                    for O = P C   : dP = dO C^T, dC = (dO^T P)^T
export function withGradSmallT(M) {
  const nt = tf.customGrad((a, b, save) => {
    save([a, b]);
    return { value: M.nt(a, b), gradFunc: (dy, [a, b]) => [M.nn(dy, b), tr(M.nn(tr(a), dy))] };
  });
  const nn = tf.customGrad((a, c, save) => {
    save([a, c]);
    return { value: M.nn(a, c), gradFunc: (dy, [a, c]) => [M.nt(dy, c), tr(M.nn(tr(dy), a))] };
  });
  return { nt, nn };
}
// hybrid: dwconv for the tiny-k (hs<=16) A·B^T product, per-slice split for everything else
methods.hybrid = {
  nt: (a, b) => (a.shape[2] <= 16 ? methods.dwconv.nt(a, b) : methods.split.nt(a, b)),
  nn: (a, c) => (a.shape[2] <= 16 ? methods.dwconv.nn(a, c) : methods.split.nn(a, c)),
};
