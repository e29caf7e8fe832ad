/**
 * End to end on a Hugging Face directory base: a real `fedtune coordinator` process serves a tiny
 * random-weight qwen2 checkpoint directory (BF16, two shards, tokenizer.json) as one ustar bundle
 * blob, and two real `fedtune device` processes download it, unpack it, check its identity and
 * train one round. The published adapter records the directory's identity (recomputed here from
 * the documented listing with node:crypto alone) and applies to openBase(dir).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decodeAdapter, decodeAdapterFile, forward, initBackend, openBase, writeHfModel } from '../../model/index.js';
import { openStateStore } from '../../server/index.js';
import { corpus, maxAbsDiff } from '../helpers.js';
import { family } from '../support/families.js';
import { CLI, startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { TOKEN } from './fixtures.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

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

describe('federation on a Hugging Face directory base (coordinator and devices as processes)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-hf-fed-'));
  const f = family('qwen2');
  const model = join(dir, 'qwen2-hf');
  writeHfModel(model, f.loaded, { dtype: 'BF16', shards: 2, tokenizerJson: f.tokenizerJson, tokenizerConfig: f.tokenizerConfig });
  writeFileSync(join(model, 'notes.txt'), 'not part of the base\n');
  const identityFiles = ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'];
  // the identity as documented: SHA-256 of the sorted `<sha256>  <file>\n` listing
  const identity = sha(Buffer.from(identityFiles.map((n) => `${sha(readFileSync(join(model, n)))}  ${n}\n`).join(''), 'utf8'));
  const data = join(dir, 'coord');
  let coord: CoordinatorProcess | undefined;
  let runs: DeviceRun[];

  before(async () => {
    const config = join(dir, 'program.json');
    writeFileSync(config, JSON.stringify({
      id: 'qwen-hf',
      base: model, // a directory: its tokenizer.json is the tokenizer
      enrolmentToken: TOKEN,
      lora: { rank: 2, alpha: 4, targets: ['wq', 'wv'], seed: 7 },
      training: { steps: 3, batchSize: 2, seqLen: 32, lr: 2e-2, quant: 'none' },
      cohortSize: 2,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 1,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
    }));
    coord = await startCoordinatorProcess(config, data);
    const shakespeare = corpus('tinyshakespeare.txt');
    runs = await Promise.all([0, 1].map((i) => {
      const text = join(dir, `local-${i}.txt`);
      writeFileSync(text, shakespeare.slice(i * 4000, (i + 1) * 4000));
      return runDeviceProcess(['--coordinator', coord!.address, '--program', 'qwen-hf', '--data', join(dir, `device-${i}`), '--token', TOKEN, '--text', text, '--seed', String(i), '--max-wait', '0.2', '--insecure']);
    }));
    coord.child.kill('SIGTERM');
    assert.equal(await coord.exited, 0, coord.stderr());
  });
  after(() => {
    if (coord?.alive()) coord.child.kill('SIGKILL');
  });

  it('both devices download the bundle, unpack exactly the identity files and take part in the round', () => {
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 0, `device ${i} failed: ${r.stderr}`);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { updatesAccepted: number; reason: string };
      assert.equal(summary.updatesAccepted, 1, r.stdout);
      const downloads = r.events.filter((e) => e.kind === 'downloaded').map((e) => e.what);
      assert.ok(downloads.includes('base') && !downloads.includes('tokenizer'), `downloads ${JSON.stringify(downloads)}`);
      const bases = readdirSync(join(dir, `device-${i}`, 'bases'));
      assert.equal(bases.length, 1, `unpacked bases ${bases}`);
      const unpacked = join(dir, `device-${i}`, 'bases', bases[0]);
      assert.deepEqual(readdirSync(unpacked).sort(), identityFiles);
      for (const n of identityFiles) assert.ok(readFileSync(join(unpacked, n)).equals(readFileSync(join(model, n))), n);
      assert.ok(!existsSync(join(dir, `device-${i}`, 'blobs', bases[0])), 'the bundle is removed once unpacked');
      // the coordinator's base blob is that bundle: a tar any tar reads, named by its SHA-256
      const blob = join(data, 'blobs', bases[0]);
      assert.equal(sha(readFileSync(blob)), bases[0]);
      assert.deepEqual(execFileSync('tar', ['-tf', blob], { encoding: 'utf8' }).trim().split('\n'), identityFiles);
    }
  });

  it('publishes version 1 recording the directory identity and a qwen2 base_config; it applies to openBase(dir) and moves the logits', async () => {
    const store = await openStateStore(join(data, 'coordinator.sqlite'));
    const program = await store.program('qwen-hf');
    const v = await store.latestVersion('qwen-hf');
    await store.close();
    assert.equal(program?.baseSha256, identity);
    assert.equal(v.version, 1);
    const bytes = readFileSync(join(data, 'blobs', v.sha256));
    const { header } = decodeAdapterFile(bytes, 'version 1');
    assert.equal(header.baseSha256, identity);
    assert.equal(header.baseConfig.arch, 'qwen2');

    await initBackend();
    const { base, tokenizer, format } = openBase(model, 'none');
    assert.equal(format, 'hf');
    const adapter = decodeAdapter(bytes, base, 'version 1');
    try {
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
