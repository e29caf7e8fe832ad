/**
 * Server-side evaluation inside a program's rounds (no gRPC, no training: synthetic updates go
 * straight to the runner): the COMPLETED event carries the new adapter's held-out loss, the store
 * keeps it with the round, the next round opens after it; an evaluation that fails is logged and
 * the round completes without a loss.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { filter, take, toArray } from 'rxjs/operators';
import { Coordinator, programSpec, type RoundEventRecord } from '../../../server/index.js';
import { corpus, MODEL } from '../../helpers.js';
import { TOKEN } from '../fixtures.js';

describe('server: server-side evaluation in the round runner', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-round-eval-'));
  const text = join(dir, 'heldout.txt');
  const chat = join(dir, 'heldout.jsonl');
  writeFileSync(text, corpus('wizard-of-oz.txt').slice(-40_000));
  writeFileSync(chat, `${JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] })}\n`);

  async function coordinator(name: string, evalBlock: object, log?: (msg: string, fields?: Record<string, unknown>) => void): Promise<Coordinator> {
    const spec = programSpec({ id: 'p', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN, lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 }, training: { steps: 2, batchSize: 2, seqLen: 32 }, cohortSize: 2, minUpdates: 2, minContributors: 2, overSelect: 1, rounds: 2, retryDelayMs: 0, eval: evalBlock });
    const c = await Coordinator.open({ dataDir: join(dir, name), programs: [spec], log });
    for (let i = 0; i < 2; i++) await c.store.enrollDevice({ id: `d${i}`, programId: 'p', signPublicKey: new Uint8Array(32).fill(i + 1), boxPublicKey: new Uint8Array(32).fill(i + 1), label: '' });
    return c;
  }

  /** Both devices send `value(i)` updates to the open round. */
  function round(c: Coordinator, value: (i: number) => number): void {
    const runner = c.program('p').runner;
    const update = Float32Array.from({ length: c.program('p').flatLength }, (_, i) => value(i));
    for (const id of ['d0', 'd1']) {
      const w = runner.checkIn(id);
      assert.ok('roundId' in w, JSON.stringify(w));
      runner.submit(id, w.roundId, update, 4, 100);
    }
  }

  it('COMPLETED events carry a held-out loss that moves with the adapter; it is stored and the next round opens after it', async () => {
    const c = await coordinator('ok', { text, maxTokens: 256, context: 32, baseText: text });
    const runner = c.program('p').runner;
    try {
      const completed = firstValueFrom(runner.events$.pipe(filter((e) => e.state === 'COMPLETED'), take(2), toArray()));
      const opened: RoundEventRecord[] = [];
      runner.events$.pipe(filter((e) => e.state === 'OPEN')).subscribe((e) => opened.push(e));
      await c.start();
      const open2 = firstValueFrom(runner.events$.pipe(filter((e) => e.state === 'OPEN' && e.roundNumber === 2)));
      round(c, (i) => 0.01 * Math.sin(i));
      // the round is committed but its event waits for the evaluation: no round is open meanwhile
      await runner.settled(); // the commit is awaited (the state store is asynchronous)
      assert.equal(runner.completedRounds, 1);
      const idle = runner.checkIn('d0');
      assert.ok('retryAfterMs' in idle && /no round is open/.test(idle.reason), JSON.stringify(idle));
      await runner.evaluationSettled();
      await open2;
      round(c, (i) => 0.05 * Math.cos(i));
      const events = await completed;
      const losses = events.map((e) => e.heldoutLoss as number);
      assert.ok(losses.every((l) => Number.isFinite(l) && l > 0), JSON.stringify(losses));
      assert.notEqual(losses[0], losses[1]);
      assert.deepEqual(events.map((e) => e.baseTextLoss), losses, 'base text = held-out text here');
      assert.deepEqual(opened.map((e) => e.roundNumber), [1, 2]);
      assert.ok(opened[1].timeUnixMs >= events[0].timeUnixMs, 'round 2 opened after round 1\'s evaluated COMPLETED event');
      assert.deepEqual((await c.store.rounds('p')).map((r) => r.metrics.heldoutLoss), losses);
      assert.deepEqual(runner.latestEvaluation(), { roundNumber: 2, heldoutLoss: losses[1], baseTextLoss: losses[1] });
      // a late watcher replays the evaluated events
      const replay = await firstValueFrom(runner.watch(0).pipe(toArray()));
      assert.deepEqual(replay.map((e) => e.heldoutLoss), losses);
    } finally {
      await c.close();
    }
  });

  it('an evaluation that fails is logged and the round completes without a loss', async () => {
    const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
    const c = await coordinator('fails', { text: chat, format: 'chat' }, (msg, fields) => logs.push({ msg, fields }));
    const runner = c.program('p').runner;
    try {
      const completed = firstValueFrom(runner.events$.pipe(filter((e) => e.state === 'COMPLETED')));
      await c.start();
      round(c, (i) => 0.01 * Math.sin(i));
      const e = await completed;
      assert.equal(e.heldoutLoss, undefined);
      const failed = logs.find((l) => l.msg === 'server evaluation failed');
      assert.ok(failed, JSON.stringify(logs));
      assert.match(String(failed.fields?.error), /no chat format/);
      assert.equal(failed.fields?.program, 'p');
      assert.equal(failed.fields?.roundId, 'p.r1.a1');
      assert.equal((await c.store.rounds('p'))[0].metrics.heldoutLoss, undefined);
    } finally {
      await c.close();
    }
  });
});
