import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { unaryCall } from '../../client/index.js';
import { loadProtos } from '../../proto/index.js';
import type { HealthCheckResponse__Output } from '../../proto/generated/grpc/health/v1/HealthCheckResponse.js';
import { MODEL } from '../helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', '..', 'cli', 'main.js');
const INJECT = join(here, 'fixtures', 'inject-faults.js');

describe('fedtune coordinator: process-level fault handlers (real child process)', function () {
  this.timeout(120_000);

  /** A coordinator child with the fault injector preloaded; `faults` timer callbacks throw once it listens. */
  function child(faults: number) {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-faults-'));
    const config = join(dir, 'program.json');
    const program = { id: 'oz', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: 'fault-token', lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 }, training: { steps: 2, batchSize: 2, seqLen: 32 }, cohortSize: 3, minUpdates: 3, rounds: 1 };
    writeFileSync(config, JSON.stringify({ programs: [program] }));
    const proc = spawn(process.execPath, ['--import', INJECT, CLI, 'coordinator', '--config', config, '--port', '0', '--data', join(dir, 'data'), '--insecure'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, INJECT_TIMER_FAULTS: String(faults) } });
    let stderr = '';
    proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const logs: { msg: string; [k: string]: unknown }[] = [];
    const waiters: { ready: () => boolean; resolve: () => void }[] = [];
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(JSON.parse(line) as { msg: string });
      for (const w of waiters.filter((x) => x.ready())) w.resolve();
    });
    /** Resolves once a log line matches; rejects if the child exits first. */
    const logged = (test: (l: { msg: string; [k: string]: unknown }) => boolean, what: string): Promise<{ msg: string; [k: string]: unknown }> =>
      Promise.race([
        new Promise<void>((resolve) => (logs.some(test) ? resolve() : waiters.push({ ready: () => logs.some(test), resolve }))).then(() => logs.find(test)!),
        exited.then((code) => Promise.reject(new Error(`the coordinator exited with ${code} before logging ${what}; stderr: ${stderr}`))),
      ]);
    return { proc, exited, logs, logged, stderr: () => stderr };
  }

  it('an exception thrown in a timer callback and an unhandled rejection are logged as JSON lines, and the coordinator keeps serving', async () => {
    const { proc, exited, logs, logged, stderr } = child(1);
    try {
      const listening = await logged((l) => l.msg === 'listening', 'listening');
      const thrown = await logged((l) => l.kind === 'uncaughtException', 'the uncaught exception');
      assert.match(String(thrown.error), /thrown in a timer callback/);
      assert.ok(typeof thrown.stack === 'string' && typeof thrown.time === 'string');
      const rejected = await logged((l) => l.kind === 'unhandledRejection', 'the unhandled rejection');
      assert.match(String(rejected.error), /a rejection nobody handles/);
      // still serving after both faults
      const { health } = loadProtos();
      const client = new health.grpc.health.v1.Health(String(listening.address), grpc.credentials.createInsecure());
      try {
        const r = await unaryCall<HealthCheckResponse__Output>((o, cb) => client.Check({ service: 'fedtune.v1.Coordinator' }, o, cb), 5000);
        assert.equal(r.status, 'SERVING');
      } finally {
        client.close();
      }
      proc.kill('SIGTERM');
      assert.equal(await exited, 0, stderr());
      assert.ok(logs.some((l) => l.msg === 'stopped'));
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  });

  it('faults that keep coming (more than 10 a minute) shut it down gracefully with exit code 1, for a supervisor to restart', async () => {
    const { proc, exited, logs, logged, stderr } = child(12);
    try {
      await logged((l) => l.msg === 'shutting down', 'shutting down');
      assert.equal(await exited, 1, stderr());
      assert.equal(logs.filter((l) => l.kind === 'uncaughtException').length >= 11, true);
      assert.ok(logs.some((l) => l.msg === 'stopped'));
      assert.match(stderr(), /stopped after \d+ uncaught faults/);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  });
});
