/**
 * End to end on a Qwen-shaped base: a real `fedtune coordinator` process and two real `fedtune
 * device` processes (real gRPC over a real port, real SQLite) federate two rounds of LoRA on a
 * tiny random-weight qwen2 GGUF (Q8_0, byte-level BPE vocabulary, no BOS). The published adapter
 * is checked against the GGUF file itself: its recorded identity is the file's SHA-256 (hashed
 * here independently), its base_config says qwen2, and applied to the base it moves the logits.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decodeAdapter, decodeAdapterFile, forward, initBackend, openBase } from '../../model/index.js';
import { openStateStore } from '../../server/index.js';
import { corpus, maxAbsDiff } from '../helpers.js';
import { family, writeFamilyGguf } from '../support/families.js';
import { CLI, startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { TOKEN } from './fixtures.js';

interface DeviceRun {
  readonly code: number;
  readonly stdout: string;
  /** The device's JSON progress lines. */
  readonly events: Record<string, unknown>[];
  readonly stderr: string;
}

/** Run `fedtune device …` to its end. */
function runDeviceProcess(args: string[]): Promise<DeviceRun> {
  const child = spawn(process.execPath, [CLI, 'device', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      const events = stderr.split('\n').flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      resolve({ code: code ?? -1, stdout, events, stderr });
    }),
  );
}

describe('federation on a qwen2 GGUF base (coordinator and devices as processes)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-qwen-fed-'));
  const gguf = writeFamilyGguf(family('qwen2'), 'Q8_0');
  const data = join(dir, 'coord');
  let coord: CoordinatorProcess | undefined;
  let runs: DeviceRun[];

  before(async () => {
    const config = join(dir, 'program.json');
    writeFileSync(config, JSON.stringify({
      id: 'qwen',
      base: gguf, // no tokenizer: the GGUF carries its own
      enrolmentToken: TOKEN,
      lora: { rank: 2, alpha: 4, targets: ['wq', 'wv'], seed: 7 },
      training: { steps: 3, batchSize: 2, seqLen: 32, lr: 2e-2, quant: 'none' },
      cohortSize: 2,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 2,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
    }));
    coord = await startCoordinatorProcess(config, data);
    const shakespeare = corpus('tinyshakespeare.txt');
    runs = await Promise.all([0, 1].map((i) => {
      const text = join(dir, `local-${i}.txt`);
      writeFileSync(text, shakespeare.slice(i * 4000, (i + 1) * 4000));
      return runDeviceProcess(['--coordinator', coord!.address, '--program', 'qwen', '--data', join(dir, `device-${i}`), '--token', TOKEN, '--text', text, '--seed', String(i), '--max-wait', '0.2', '--insecure']);
    }));
    coord.child.kill('SIGTERM');
    assert.equal(await coord.exited, 0, coord.stderr());
  });
  after(() => {
    if (coord?.alive()) coord.child.kill('SIGKILL');
  });

  it('both devices train on the GGUF with its own tokenizer and take part in both rounds', () => {
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 0, `device ${i} failed: ${r.stderr}`);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { updatesAccepted: number; reason: string };
      assert.equal(summary.updatesAccepted, 2, r.stdout);
      assert.match(summary.reason, /completed its 2 rounds/);
      const downloads = r.events.filter((e) => e.kind === 'downloaded').map((e) => e.what);
      assert.ok(downloads.includes('base') && !downloads.includes('tokenizer'), `downloads ${JSON.stringify(downloads)}: a GGUF base needs no tokenizer blob`);
      const losses = r.events.filter((e) => e.kind === 'training').map((e) => e.loss as number);
      assert.ok(losses.length > 0 && losses.every(Number.isFinite), `losses ${losses}`);
    }
  });

  it('publishes version 2 recording the GGUF sha256 and a qwen2 base_config; applied to the base, it changes the logits', async () => {
    const fileSha = createHash('sha256').update(readFileSync(gguf)).digest('hex');
    const store = await openStateStore(join(data, 'coordinator.sqlite'));
    const program = await store.program('qwen');
    const v = await store.latestVersion('qwen');
    const completed = (await store.rounds('qwen')).filter((r) => r.state === 'completed').map((r) => [r.roundNumber, r.adapterVersion]);
    await store.close();
    assert.equal(program?.baseSha256, fileSha);
    assert.deepEqual(completed, [[1, 1], [2, 2]]);
    assert.equal(v.version, 2);
    const bytes = readFileSync(join(data, 'blobs', v.sha256));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), v.sha256);
    const { header } = decodeAdapterFile(bytes, 'version 2');
    assert.equal(header.baseSha256, fileSha);
    assert.equal(header.baseConfig.arch, 'qwen2');
    assert.equal(header.baseConfig.attnBias, true);

    // the client path: open the base as a device does, decode the adapter against it
    await initBackend();
    const { base, tokenizer } = openBase(gguf, 'none');
    const adapter = decodeAdapter(bytes, base, 'version 2');
    try {
      assert.equal(tokenizer.kind, 'bpe');
      const ids = tokenizer.encode('ROMEO: But soft, what light', { bos: false });
      const tokens = Int32Array.from([tokenizer.startId, ...ids]);
      const logits = (opts: Parameters<typeof forward>[3]) => tf.tidy(() => forward(base, tokens, 1, opts).logits.dataSync() as Float32Array);
      const plain = logits({});
      const tuned = logits({ adapter });
      assert.ok(plain.every(Number.isFinite) && tuned.every(Number.isFinite));
      const d = maxAbsDiff(plain, tuned);
      assert.ok(d > 1e-3, `the published adapter moves the logits by only ${d}`);
    } finally {
      adapter.dispose();
      base.dispose();
    }
  });
});
