import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator } from '../../server/index.js';
import { smallProgram } from './fixtures.js';

describe('server: an exception in a round timer is logged, never thrown out of the callback', function () {
  this.timeout(60_000);

  it('the deadline timer fires with the database gone: the failure is a structured log line and the process goes on', async () => {
    let resolve!: (fields: Record<string, unknown>) => void;
    const threw = new Promise<Record<string, unknown>>((r) => (resolve = r));
    const running = await startCoordinator({
      dataDir: mkdtempSync(join(tmpdir(), 'fedtune-timer-')),
      port: 0,
      programs: [smallProgram('quick', { cohortSize: 2, minUpdates: 2, roundDeadlineMs: 200, retryDelayMs: 100 })],
      log: (msg, fields = {}) => {
        if (msg === 'round step threw') resolve(fields);
      },
    });
    try {
      await running.coordinator.store.close(); // every store call from now on throws
      const f = await threw;
      assert.equal(f.program, 'quick');
      assert.match(String(f.what), /deadline/);
      assert.match(String(f.error), /database|open/i);
    } finally {
      await running.shutdown(500);
    }
  });
});
