/**
 * `fedtune coordinator --metrics-port` as a real process with two real devices and two rounds of
 * a program with server-side evaluation: /metrics scraped over HTTP and parsed as the Prometheus
 * text format, the pino log lines of each round (program and round id), and the held-out loss
 * carried by WatchRounds, stored with the round, and equal to the loss computed here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { toArray } from 'rxjs/operators';
import { Device } from '../../client/index.js';
import { decodeAdapter, evaluateLoss, FrozenBase } from '../../model/index.js';
import type { RoundEvent__Output } from '../../proto/generated/fedtune/v1/RoundEvent.js';
import { openStateStore } from '../../server/index.js';
import { corpus, MODEL, realModel } from '../helpers.js';
import { familyOf, parsePromText, sampleValue, type PromText } from '../support/prom-text.js';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

describe('coordinator process: Prometheus metrics, pino logs and server-side evaluation after real rounds', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-metrics-'));
  const oz = corpus('wizard-of-oz.txt');
  const heldout = oz.slice(Math.floor(oz.length * 0.9));
  const heldoutPath = join(dir, 'heldout.txt');
  const generalPath = join(dir, 'general.txt');
  const EVAL = { maxTokens: 768, context: 32 };
  let proc: CoordinatorProcess;
  let metricsUrl: string;
  let prom: PromText;
  let events: RoundEvent__Output[];

  const scrape = async (): Promise<PromText> => {
    const res = await fetch(metricsUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parsePromText(await res.text());
  };

  before(async () => {
    writeFileSync(heldoutPath, heldout);
    writeFileSync(generalPath, corpus('tinystories-sample.txt').slice(0, 20_000));
    const config = join(dir, 'programs.json');
    const program = {
      id: 'oz',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'], seed: 5 },
      training: { steps: 4, batchSize: 4, seqLen: 32, lr: 2e-2, quant: 'int8' },
      cohortSize: 2,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 2,
      roundDeadlineMs: 60_000,
      retryDelayMs: 200,
      eval: { text: 'heldout.txt', format: 'text', ...EVAL, baseText: 'general.txt' },
    };
    writeFileSync(config, JSON.stringify({ programs: [program] }));
    proc = await startCoordinatorProcess(config, join(dir, 'data'), { args: ['--metrics-port', '0', '--log-level', 'info'] });
    const listening = proc.lines.find((l) => l.msg === 'listening');
    assert.ok(listening && typeof listening.metricsPort === 'number', JSON.stringify(listening));
    metricsUrl = `http://127.0.0.1:${listening.metricsPort as number}/metrics`;
    await runDevices({ address: proc.address, programId: 'oz', dir, ids: [0, 1], shardChars: 20_000 });
    // a round's 'round completed' line is logged after its COMPLETED event (which waits for the
    // round's evaluation) reached the metrics: scrape once the second one is in
    const c = proc;
    await new Promise<void>((resolve) => {
      const check = (): boolean => c.lines.filter((l) => l.msg === 'round completed' && l.program === 'oz').length >= 2 && (resolve(), true);
      if (!check()) c.onLog(() => void check());
    });
    prom = await scrape();
    const watcher = new Device({ address: proc.address, programId: 'oz', dataDir: join(dir, 'watcher'), enrolmentToken: TOKEN, text: ['unused'] });
    events = await firstValueFrom(watcher.watchRounds(0).pipe(toArray()));
    watcher.close();
  });
  after(async () => {
    if (proc?.alive()) {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('/metrics is valid Prometheus text: every sample in a typed, documented fedtune_ family, counters named _total', () => {
    assert.ok(prom.samples.length > 20);
    for (const s of prom.samples) {
      const family = familyOf(s.name, prom.types);
      assert.ok(family, `sample ${s.name} has no # TYPE`);
      assert.ok(prom.help.has(family), `family ${family} has no # HELP`);
      assert.match(s.name, /^fedtune_[a-z0-9_]+$/);
      if (prom.types.get(family) === 'counter') assert.match(family, /_total$/, `counter ${family}`);
    }
  });

  it('round, update, device, privacy and loss metrics match what happened', async () => {
    const v = (name: string, labels: Record<string, string> = { program: 'oz' }): number => sampleValue(prom, name, labels);
    assert.equal(v('fedtune_rounds_completed_total'), 2);
    assert.equal(v('fedtune_rounds_failed_total'), 0);
    assert.equal(v('fedtune_round_duration_seconds_count', { program: 'oz', outcome: 'completed' }), 2);
    assert.ok(v('fedtune_round_duration_seconds_sum', { program: 'oz', outcome: 'completed' }) > 0);
    assert.equal(v('fedtune_round_duration_seconds_bucket', { program: 'oz', outcome: 'completed', le: '+Inf' }), 2);
    assert.equal(v('fedtune_updates_accepted_total'), 4, 'two devices × two rounds');
    assert.equal(prom.samples.filter((s) => s.name === 'fedtune_updates_rejected_total').length, 0);
    assert.equal(v('fedtune_devices_enrolled'), 2);
    assert.equal(v('fedtune_devices_active'), 2);
    assert.equal(v('fedtune_epsilon_spent'), 0);
    assert.equal(v('fedtune_epsilon_remaining'), Infinity, 'no budget');
    assert.equal(v('fedtune_clip_norm'), 0);
    assert.equal(v('fedtune_adapter_version'), 2);
    assert.equal(v('fedtune_program_done'), 1);
    // bytes: each device downloaded the base and the tokenizer; uploads are at least the sealed updates
    const downloads = 2 * (statSync(MODEL.bin).size + statSync(MODEL.tok).size);
    assert.ok(v('fedtune_sent_bytes_total') >= downloads, `sent ${v('fedtune_sent_bytes_total')} < ${downloads}`);
    const sealed = events.reduce((a, e) => a + Number(e.bytesReceived), 0);
    assert.ok(sealed > 0 && v('fedtune_received_bytes_total') >= sealed, `received ${v('fedtune_received_bytes_total')} < ${sealed}`);
    assert.ok(v('fedtune_grpc_requests_total', { method: 'CheckIn', code: 'OK' }) >= 4);
    assert.ok(v('fedtune_grpc_requests_total', { method: 'UploadUpdate', code: 'OK' }) === 4);
    // held-out loss: the last round's
    const last = events[events.length - 1];
    assert.ok(Math.abs(v('fedtune_heldout_loss') - Number(last.heldoutLoss)) < 1e-9);
    assert.ok(Math.abs(v('fedtune_base_text_loss') - Number(last.baseTextLoss)) < 1e-9);
    // the process: event-loop lag, heap, RSS
    assert.ok(v('fedtune_process_resident_memory_bytes', {}) > 1e6);
    assert.ok(v('fedtune_nodejs_heap_size_used_bytes', {}) > 1e5);
    assert.ok(v('fedtune_nodejs_eventloop_lag_seconds', {}) >= 0);
    // anything but /metrics is 404
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/other'))).status, 404);
  });

  it('pino logs: one JSON object per line with an ISO time and a level word; every round line carries program and round id', () => {
    assert.ok(proc.lines.length > 5);
    for (const l of proc.lines) {
      assert.notEqual(l.msg, 'unparsed', JSON.stringify(l));
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(['info', 'warn', 'error', 'debug'].includes(String(l.level)), JSON.stringify(l));
    }
    const roundLines = proc.lines.filter((l) => l.msg === 'round open' || l.msg === 'round completed');
    assert.equal(roundLines.length, 4, 'two rounds opened and completed');
    for (const l of roundLines) {
      assert.equal(l.program, 'oz');
      assert.equal(typeof l.round, 'number');
      assert.equal(l.roundId, `oz.r${l.round as number}.a1`);
    }
    const completed = proc.lines.filter((l) => l.msg === 'round completed');
    assert.deepEqual(completed.map((l) => l.heldoutLoss), events.map((e) => e.heldoutLoss));
  });

  it('server-side evaluation: each COMPLETED event carries the new adapter\'s held-out loss, it changes between rounds, it is stored, and it is the loss computed here', async () => {
    assert.deepEqual(events.map((e) => [Number(e.roundNumber), e.state]), [[1, 'ROUND_STATE_COMPLETED'], [2, 'ROUND_STATE_COMPLETED']]);
    const losses = events.map((e) => Number(e.heldoutLoss));
    for (const [i, e] of events.entries()) {
      assert.ok(Number.isFinite(losses[i]) && losses[i] > 0, `round ${e.roundNumber}: ${e.heldoutLoss}`);
      assert.ok(Number.isFinite(Number(e.baseTextLoss)) && Number(e.baseTextLoss) > 0);
    }
    assert.notEqual(losses[0], losses[1], 'the loss moves with the adapter');
    // recomputed here, on the main thread, from the stored version 2 and the same data
    const { base: loaded, tokenizer } = await realModel();
    const base = new FrozenBase(loaded, 'int8');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    const store = await openStateStore(join(dir, 'data', 'coordinator.sqlite'));
    try {
      const stored = (await store.rounds('oz')).filter((r) => r.state === 'completed');
      assert.deepEqual(stored.map((r) => r.metrics.heldoutLoss), losses, 'the losses are stored with their rounds');
      const v2 = await store.latestVersion('oz');
      assert.equal(v2.version, 2);
      const adapter = decodeAdapter(readFileSync(join(dir, 'data', 'blobs', v2.sha256)), base);
      const mine = evaluateLoss(base, tokenizer.encode(heldout, { bos: false }), { startId: tokenizer.startId, context: EVAL.context, maxTokens: EVAL.maxTokens, adapter });
      adapter.dispose();
      assert.equal(stored[1].metrics.heldoutTokens, mine.tokens);
      assert.ok(Math.abs(mine.loss - losses[1]) < 1e-4, `worker ${losses[1]} vs here ${mine.loss}`);
    } finally {
      await store.close();
      base.dispose();
    }
  });
});
