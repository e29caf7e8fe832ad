import assert from 'node:assert/strict';
import { ServerOptimizer } from '../../aggregators/index.js';

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(b));

describe('aggregators/server-optimizers (Reddi et al. 2021)', () => {
  const x0 = Float32Array.of(0, 1);
  const d1 = Float32Array.of(0.5, -0.2);
  const d2 = Float32Array.of(0.1, 0.3);

  it('FedAvg and FedAvgM follow their updates', () => {
    assert.deepEqual(Array.from(new ServerOptimizer({ kind: 'fedavg', lr: 1 }).step(x0, d1)), Array.from(Float32Array.of(0.5, 0.8)));
    const m = new ServerOptimizer({ kind: 'fedavgm', lr: 0.5, momentum: 0.9 });
    const x1 = m.step(x0, d1); // v = d1
    const x2 = m.step(x1, d2); // v = 0.9 d1 + d2
    assert.ok(close(x2[0], 0.5 * 0.5 + 0.5 * (0.9 * 0.5 + 0.1)));
    assert.ok(close(x2[1], 1 + 0.5 * -0.2 + 0.5 * (0.9 * -0.2 + 0.3)));
  });

  it('FedAdagrad, FedAdam and FedYogi match the update rules computed by hand', () => {
    const lr = 0.01;
    const tau = 1e-3;
    const g = 0.5;
    const m = 0.1 * g; // β1 = 0.9, m0 = 0
    const v0 = tau * tau;
    const cases: [string, number][] = [
      ['fedadagrad', v0 + g * g],
      ['fedadam', 0.99 * v0 + 0.01 * g * g],
      ['fedyogi', v0 - 0.01 * g * g * Math.sign(v0 - g * g)],
    ];
    for (const [kind, v] of cases) {
      const o = new ServerOptimizer({ kind: kind as 'fedadam', lr, tau });
      const x = o.step(Float32Array.of(0), Float32Array.of(g));
      assert.ok(close(x[0], (lr * m) / (Math.sqrt(v) + tau)), `${kind}: ${x[0]}`);
    }
  });

  it('validates its options and input lengths', () => {
    assert.throws(() => new ServerOptimizer({ kind: 'sgd' as 'fedadam' }), /kind must be one of/);
    assert.throws(() => new ServerOptimizer({ kind: 'fedadam', beta2: 1 }), /beta2 must be in \[0, 1\)/);
    assert.throws(() => new ServerOptimizer({ kind: 'fedadam' }).step(x0, Float32Array.of(1)), /delta 1/);
  });
});

describe('aggregators/server-optimizers (input checks)', () => {
  it('refuses a non-finite delta without touching its state', () => {
    const o = new ServerOptimizer({ kind: 'fedadam', lr: 0.1 });
    const x = o.step(Float32Array.of(0), Float32Array.of(1));
    assert.throws(() => o.step(x, Float32Array.of(NaN)), /non-finite value at 0; the state is unchanged/);
    assert.ok(Number.isFinite(o.step(x, Float32Array.of(1))[0]));
  });
});
