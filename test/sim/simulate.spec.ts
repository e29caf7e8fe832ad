import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

describe('fedtune simulate (coordinator + device worker threads over loopback)', function () {
  this.timeout(300_000);

  it('runs a tiny federation over the five partner domains and writes the summary, adapter and plot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-sim-'));
    const summaryPath = join(dir, 'summary.json');
    const r = spawnSync(
      process.execPath,
      [CLI, 'simulate', '--devices', '5', '--rounds', '1', '--steps', '2', '--batch', '2', '--seq-len', '32', '--eval-tokens', '256', '--chars-per-device', '4000', '--no-baselines', '--out', join(dir, 'out'), '--json-summary', summaryPath],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(readFileSync(summaryPath, 'utf8')) as {
      domains: string[];
      rounds: unknown[];
      perDomain: Record<string, { before: number; after: number }>;
      bytesUp: number;
      adapterPath: string;
      plotPath: string;
    };
    assert.deepEqual(s.domains, ['oz', 'shakespeare', 'moby-dick', 'sotu', 'brown']);
    assert.equal(s.rounds.length, 1);
    for (const d of s.domains) {
      const p = s.perDomain[d];
      assert.ok(Number.isFinite(p.before) && Number.isFinite(p.after) && p.before !== p.after, `${d}: ${JSON.stringify(p)}`);
    }
    assert.ok(s.bytesUp > 0);
    assert.ok(existsSync(s.adapterPath) && existsSync(s.plotPath));
    assert.match(r.stderr, /\| round 1 \|/);
  });

  it('refuses bad options with exit code 2 and a sentence', () => {
    const r = spawnSync(process.execPath, [CLI, 'simulate', '--domains', 'oz,klingon'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--domains: unknown domain "klingon"/);
  });
});
