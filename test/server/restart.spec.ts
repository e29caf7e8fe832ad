import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStateStore } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { startCoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

describe('coordinator crash and restart (kill -9)', function () {
  this.timeout(300_000);

  it('resumes after the last completed round, keeps every completed round, and fails the round that was open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-restart-'));
    const config = join(dir, 'program.json');
    const program = {
      id: 'oz',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 },
      training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
      cohortSize: 3,
      minUpdates: 3,
      overSelect: 1,
      rounds: 3,
      roundDeadlineMs: 120_000,
      retryDelayMs: 100,
    };
    writeFileSync(config, JSON.stringify({ programs: [program] }));
    const data = join(dir, 'data');
    const run = (address: string, ids: number[], maxRounds?: number) =>
      runDevices({ address, programId: 'oz', dir, ids, shardChars: 30_000, options: () => ({ maxRounds, maxWaitMs: 200 }) });

    // round 1 completes; then kill -9
    let c = await startCoordinatorProcess(config, data);
    await run(c.address, [0, 1, 2], 1);
    c.child.kill('SIGKILL');
    await c.exited;

    // restart: round 2 opens; two of three devices upload; kill -9 with the round open
    c = await startCoordinatorProcess(config, data);
    const partial = await run(c.address, [0, 1], 1);
    assert.deepEqual(partial.map((s) => s.updatesAccepted), [1, 1]);
    c.child.kill('SIGKILL');
    await c.exited;

    // restart again: rounds 2 and 3 complete; SIGTERM shuts down gracefully
    c = await startCoordinatorProcess(config, data);
    const final = await run(c.address, [0, 1, 2]);
    assert.ok(final.every((s) => /completed its 3 rounds/.test(s.reason)), JSON.stringify(final));
    c.child.kill('SIGTERM');
    assert.equal(await c.exited, 0);

    const store = await openStateStore(join(data, 'coordinator.sqlite'));
    const rounds = (await store.rounds('oz')).map((r) => [r.roundNumber, r.attempt, r.state, r.adapterVersion]);
    // every failed attempt is one a kill -9 left open (round 2 opened right after round 1 completed)
    for (const r of (await store.rounds('oz')).filter((x) => x.state === 'failed')) assert.match(r.message, /restarted while the round was open/);
    assert.equal((await store.latestVersion('oz')).version, 3);
    await store.close();
    assert.deepEqual(rounds, [
      [1, 1, 'completed', 1],
      [2, 1, 'failed', 1],
      [2, 2, 'failed', 1],
      [2, 3, 'completed', 2],
      [3, 1, 'completed', 3],
    ]);
  });
});
