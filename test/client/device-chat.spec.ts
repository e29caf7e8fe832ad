/**
 * A chat program (training.dataFormat "chat") at the device: a real Device against an in-process
 * coordinator on a tiny qwen2 GGUF trains on chat JSONL with the assistant-only mask and its
 * published adapter lowers the masked (replies-only) loss of that data; devices that cannot
 * train a chat program say so before they take a place in a round.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device, LocalDataError, localTrainingData, type DeviceEvent } from '../../client/index.js';
import { decodeAdapter, evaluateLoss, initBackend, LocalTrainer, openBase, type MaskedTokens } from '../../model/index.js';
import { trainingFromWire, trainingToWire } from '../../proto/index.js';
import { programSpec, startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { MODEL, maxAbsDiff } from '../helpers.js';
import { CLI } from '../server/coordinator-process.js';
import { TOKEN } from '../server/fixtures.js';
import { family, writeFamilyGguf } from '../support/families.js';

const REPLIES: [string, string][] = [
  ['Who art thou?', 'A humble servant of the king.'],
  ['What news?', 'The duke is come to town.'],
  ['Where goest thou?', 'To the market, good sir.'],
  ['Art thou well?', 'Never better, by my troth.'],
];
const CHAT = Array.from({ length: 3 }, () => REPLIES.map(([q, a]) => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] })))
  .flat()
  .join('\n');

describe('client: a device in a chat program', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-devchat-'));
  const gguf = writeFamilyGguf(family('qwen2'), 'Q8_0');
  const common = { enrolmentToken: TOKEN, cohortSize: 1, minUpdates: 1, minContributors: 1, overSelect: 1, rounds: 1, roundDeadlineMs: 30_000, retryDelayMs: 100 };
  let running: RunningCoordinator;
  before(async () => {
    running = await startCoordinator({
      dataDir: join(dir, 'coord'),
      port: 0,
      programs: [
        programSpec({ id: 'chat', base: gguf, lora: { rank: 4, alpha: 8, targets: ['wq', 'wv', 'wo', 'w2'], seed: 3 }, training: { steps: 8, batchSize: 4, seqLen: 32, lr: 3e-2, quant: 'none', dataFormat: 'chat' }, ...common }),
        programSpec({ id: 'stories-chat', base: MODEL.bin, tokenizer: MODEL.tok, lora: { rank: 2, targets: ['wq'] }, training: { steps: 2, batchSize: 2, seqLen: 32, quant: 'none', dataFormat: 'chat' }, ...common }),
      ],
    });
  });
  after(async () => {
    await running?.shutdown(1000);
  });

  const device = (programId: string, name: string, text: string, over: Partial<ConstructorParameters<typeof Device>[0]> = {}) => {
    const d = new Device({ address: running.address, programId, dataDir: join(dir, name), enrolmentToken: TOKEN, text: [text], seed: 1, maxWaitMs: 200, ...over });
    const events: DeviceEvent[] = [];
    d.progress$.subscribe((e) => events.push(e));
    return { d, events, run: () => d.run().finally(() => d.close()) };
  };

  it('trains on the replies only and publishes an adapter that lowers their loss', async () => {
    const initial = await running.coordinator.store.latestVersion('chat');
    const { run, events } = device('chat', 'ok', CHAT, { dataFormat: 'chat' });
    const s = await run();
    assert.equal(s.updatesAccepted, 1, JSON.stringify(s));
    assert.ok(events.some((e) => e.kind === 'training'));

    const v = await running.coordinator.store.latestVersion('chat');
    assert.equal(v.version, 1);
    await initBackend();
    const { base, tokenizer } = openBase(gguf, 'none');
    const blob = (sha: string) => readFileSync(join(dir, 'coord', 'blobs', sha));
    const adapter = decodeAdapter(blob(v.sha256), base);
    try {
      const data = localTrainingData([CHAT], 'chat', { tokenizer, chatStyle: { format: 'chatml' } }) as MaskedTokens;
      // the one device's update is the published change (FedAvg, η = 1, float32 updates): the same
      // training replayed here with the mask gives it back, without the mask it does not
      const training = trainingFromWire(trainingToWire(running.coordinator.program('chat').spec.training) as Parameters<typeof trainingFromWire>[0]);
      const replay = async (d: MaskedTokens | Int32Array) => {
        const a = decodeAdapter(blob(initial.sha256), base);
        await new LocalTrainer(base, a, d, { ...training, startId: tokenizer.startId, seed: 1 }).run();
        const flat = a.toFlat();
        a.dispose();
        return flat;
      };
      const published = adapter.toFlat();
      const masked = maxAbsDiff(published, await replay(data));
      const unmasked = maxAbsDiff(published, await replay(data.tokens));
      assert.ok(masked < 1e-4 && unmasked > 100 * masked, `published vs masked replay ${masked}, vs unmasked ${unmasked}`);
      const opts = { startId: tokenizer.startId, context: 32 };
      const before = evaluateLoss(base, data, opts);
      const after = evaluateLoss(base, data, { ...opts, adapter });
      // only reply tokens (and their <|im_end|>) are counted: far fewer than the stream holds
      const scored = data.lossMask.reduce((a, b) => a + b, 0);
      assert.ok(scored > 0 && scored < data.tokens.length / 2, `${scored} of ${data.tokens.length}`);
      assert.ok(after.loss < before.loss - 0.05, `replies-only loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}`);
    } finally {
      adapter.dispose();
      base.dispose();
    }
  });

  it('a device whose data is plain text refuses a chat program before downloading anything', async () => {
    const { run, events } = device('chat', 'text', 'Once upon a time', { dataFormat: 'text' });
    await assert.rejects(run(), (e: unknown) => e instanceof LocalDataError && e.wanted === 'chat' && /program chat trains on chat conversations \(training\.dataFormat "chat"\), but this device's local data is plain text/.test(e.message));
    assert.ok(!events.some((e) => e.kind === 'downloaded'), JSON.stringify(events));
  });

  it('a device with malformed chat JSONL says which line, before it checks in', async () => {
    const { run, events } = device('chat', 'bad', `${CHAT}\nnot json\n`);
    await assert.rejects(run(), (e: unknown) => e instanceof LocalDataError && /the local chat data line 13: not valid JSON/.test(e.message));
    assert.ok(!events.some((e) => e.kind === 'training' || (e.kind === 'downloaded' && e.what === 'adapter')), JSON.stringify(events));
  });

  it('a device whose base has no chat format answers with a clear error', async () => {
    const { run, events } = device('stories-chat', 'stories', CHAT);
    await assert.rejects(run(), (e: unknown) => e instanceof LocalDataError && /base has no chat format: neither a ChatML nor a Llama 3 chat template or special tokens/.test(e.message));
    // it never joined a round: a round's adapter is fetched only after a check-in hands out work
    assert.ok(!events.some((e) => e.kind === 'training' || (e.kind === 'downloaded' && e.what === 'adapter')), JSON.stringify(events));
  });

  it('fedtune device --chat reads its --text files as chat JSONL; without --chat it is told to pass it', async () => {
    const file = join(dir, 'chat.jsonl');
    writeFileSync(file, CHAT);
    // spawned, not spawnSync: the coordinator serves from this process
    const cli = (name: string, ...flags: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'device', '--coordinator', running.address, '--program', 'chat', '--data', join(dir, name), '--token', TOKEN, '--text', file, '--max-wait', '0.2', '--insecure', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const [withChat, without] = await Promise.all([cli('cli-chat', '--chat'), cli('cli-text')]);
    // the program's one round is over: a device whose data renders learns that it is complete
    assert.equal(withChat.code, 0, withChat.stderr);
    assert.match(JSON.parse(withChat.stdout.trim()).reason as string, /completed its 1 rounds?/);
    assert.equal(without.code, 2, without.stderr);
    assert.match(without.stderr, /fedtune device: program chat trains on chat conversations .* \(pass --chat with chat JSONL --text files\)/);
  });
});
