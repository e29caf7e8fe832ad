/**
 * Server-side evaluation in a worker thread (server/eval/): the `eval` config block and its
 * refusals, the worker's loss against the loss computed on this thread, and — the point of the
 * worker — a coordinator that keeps answering health checks, with a quiet event loop, while an
 * evaluation runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { evaluateLoss, FrozenBase, initialAdapterFlat, LoraAdapter, adapterTensorsFromFlat } from '../../../model/index.js';
import { loadProtos } from '../../../proto/index.js';
import { startCoordinator } from '../../../server/index.js';
import { WorkerEvaluator } from '../../../server/eval/evaluator.js';
import { corpus, realModel } from '../../helpers.js';
import { smallProgram } from '../fixtures.js';

describe('server: server-side evaluation in a worker thread', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-eval-'));
  const text = join(dir, 'heldout.txt');
  const chat = join(dir, 'heldout.jsonl');
  before(() => {
    writeFileSync(text, corpus('wizard-of-oz.txt').slice(-120_000));
    writeFileSync(chat, `${JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] })}\n`);
  });

  it('the eval block: defaults, paths relative to the config, unknown keys and bad values refused by name', () => {
    const spec = smallProgram('oz', { eval: { text } });
    assert.deepEqual({ ...spec.eval }, { textPath: text, format: 'text', maxTokens: 4096, context: undefined, baseTextPath: '' });
    assert.equal(smallProgram('oz').eval, undefined);
    assert.throws(() => smallProgram('oz', { eval: { text, maxTokenz: 5 } }), /program "oz": eval\.maxTokenz: unknown key; did you mean "maxTokens"\?/);
    assert.throws(() => smallProgram('oz', { eval: { text, format: 'csv' } }), /program "oz": eval\.format must be one of "text", "chat", got "csv"/);
    assert.throws(() => smallProgram('oz', { eval: { text, maxTokens: 0 } }), /eval\.maxTokens/);
    assert.throws(() => smallProgram('oz', { eval: {} }), /eval\.text/);
    assert.throws(() => smallProgram('oz', { eval: { text: join(dir, 'missing.txt') } }), /eval\.text file .*missing\.txt does not exist/);
    assert.throws(() => smallProgram('oz', { eval: { text, baseText: join(dir, 'gone.txt') } }), /eval\.baseText file .*gone\.txt does not exist/);
  });

  it('the worker\'s loss is the loss computed on this thread (same base quantization, windows and tokens)', async () => {
    const spec = smallProgram('oz', { eval: { text, maxTokens: 600, context: 48, baseText: text } });
    const { base: loaded, tokenizer } = await realModel();
    const ev = new WorkerEvaluator(spec, loaded.weights.config);
    const base = new FrozenBase(loaded, 'int8');
    try {
      // a non-zero adapter: B filled with a small pattern
      const flat = initialAdapterFlat(loaded.weights.config, spec.lora).map((v, i) => (v === 0 ? 0.02 * Math.sin(i) : v));
      const r = await ev.evaluate(flat, 1);
      const adapter = LoraAdapter.fromTensors(base.config, base.sha256, spec.lora, adapterTensorsFromFlat(base.config, spec.lora, flat));
      const mine = evaluateLoss(base, tokenizer.encode(corpus('wizard-of-oz.txt').slice(-120_000), { bos: false }), { startId: tokenizer.startId, context: 48, maxTokens: 600, adapter });
      adapter.dispose();
      assert.equal(r.heldoutTokens, mine.tokens);
      assert.ok(Math.abs(r.heldoutLoss - mine.loss) < 1e-4, `${r.heldoutLoss} vs ${mine.loss}`);
      assert.equal(r.baseTextLoss, r.heldoutLoss, 'the same text as base text scores the same');
    } finally {
      ev.close();
      base.dispose();
    }
    await assert.rejects(ev.evaluate(new Float32Array(3), 2), /closed/);
  });

  it('an evaluation that cannot run rejects with the reason (chat data on a base without a chat format)', async () => {
    const spec = smallProgram('oz', { eval: { text: chat, format: 'chat' } });
    const { base: loaded } = await realModel();
    const ev = new WorkerEvaluator(spec, loaded.weights.config);
    try {
      await assert.rejects(ev.evaluate(initialAdapterFlat(loaded.weights.config, spec.lora), 1), /has no chat format/);
      await assert.rejects(ev.evaluate([1, 2] as unknown as Float32Array, 1), TypeError);
    } finally {
      ev.close();
    }
  });

  it('the event loop stays responsive while an evaluation runs: health checks answer, loop delay stays small', async () => {
    const spec = smallProgram('oz', { eval: { text, maxTokens: 20_000, context: 128 } });
    const running = await startCoordinator({ dataDir: join(dir, 'coord'), port: 0, programs: [smallProgram('oz')] });
    const { health: h } = loadProtos();
    const health = new h.grpc.health.v1.Health(running.address, grpc.credentials.createInsecure());
    const { base: loaded } = await realModel();
    const ev = new WorkerEvaluator(spec, loaded.weights.config);
    try {
      await ev.ready();
      const flat = initialAdapterFlat(loaded.weights.config, spec.lora);
      const loop = monitorEventLoopDelay({ resolution: 10 });
      let evaluating = true;
      const t0 = performance.now();
      const evaluation = ev.evaluate(flat, 1).finally(() => {
        evaluating = false;
      });
      loop.enable();
      let answered = 0;
      while (evaluating) {
        const status = await new Promise<string>((resolve, reject) => health.Check({ service: '' }, { deadline: Date.now() + 2000 }, (e, r) => (e ? reject(e) : resolve(String(r?.status)))));
        assert.equal(status, 'SERVING');
        if (evaluating) answered++; // each check is its own round trip: the loop is paced by the server's answers
      }
      loop.disable();
      const took = performance.now() - t0;
      const r = await evaluation;
      assert.ok(r.heldoutTokens > 3000 && Number.isFinite(r.heldoutLoss));
      assert.ok(answered >= 10, `${answered} health checks answered during a ${took.toFixed(0)} ms evaluation`);
      // evaluated on this thread, the loop would stall for the whole evaluation; the bound leaves room for a busy machine
      assert.ok(took > 500, `the evaluation took ${took.toFixed(0)} ms: too short to show anything`);
      assert.ok(loop.max / 1e6 < took / 4, `event-loop delay reached ${(loop.max / 1e6).toFixed(0)} ms during a ${took.toFixed(0)} ms evaluation`);
    } finally {
      ev.close();
      health.close();
      await running.shutdown(500);
    }
  });
});
