/** `fedtune train`: tune one LoRA adapter on one device's text (or chat conversations) and save it. */
import { QUANT_MODES } from '../server/config-names.js';
import { evaluateLoss, LoraAdapter, loraConfig, LocalTrainer, saveAdapter, isMatrixName, MATRIX_NAMES, type MaskedTokens } from '../model/index.js';
import { CliError, log, num, parse, required } from './args.js';
import { chatStyleFor, readChatData } from './chat.js';
import { loadModel, MODEL_OPTIONS, readText } from './load.js';

/** Usage text. */
export const TRAIN_USAGE = `fedtune train --text FILE --out FILE [--rank R] [--alpha A] [--targets wq,wv] [--dropout P] [--freeze-a]
              [--steps N | --epochs E] [--lr X] [--batch B] [--seq-len T] [--weight-decay W] [--clip-norm C]
              [--time-budget SECONDS] [--seed S] [--eval-text FILE] [--json]
              [--chat [--chat-format chatml|llama3] [--chat-template FILE]]  (--text/--eval-text are chat JSONL; loss on replies only)
              [--base FILE|DIR] [--tokenizer FILE] [--quant ${QUANT_MODES.join('|')}] [--adapter FILE (start from)] [--backend B]`;

/** Run the command. */
export async function trainCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    ...MODEL_OPTIONS,
    text: { type: 'string' },
    out: { type: 'string' },
    rank: { type: 'string' },
    alpha: { type: 'string' },
    targets: { type: 'string' },
    dropout: { type: 'string' },
    'freeze-a': { type: 'boolean' },
    steps: { type: 'string' },
    epochs: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string' },
    'seq-len': { type: 'string' },
    'weight-decay': { type: 'string' },
    'clip-norm': { type: 'string' },
    'time-budget': { type: 'string' },
    seed: { type: 'string' },
    'eval-text': { type: 'string' },
    json: { type: 'boolean' },
    chat: { type: 'boolean' },
    'chat-format': { type: 'string' },
    'chat-template': { type: 'string' },
  });
  const textPath = required(v, 'text');
  const out = required(v, 'out');
  const rank = num(v, 'rank', { integer: true, min: 0, minExclusive: true });
  const alpha = num(v, 'alpha', { min: 0, minExclusive: true });
  const dropout = num(v, 'dropout', { min: 0, max: 0.99 });
  const targets = typeof v.targets === 'string' ? v.targets.split(',').map((s) => s.trim()) : undefined;
  for (const t of targets ?? []) {
    if (!isMatrixName(t)) throw new CliError(`--targets: unknown target "${t}"; choose from ${MATRIX_NAMES.join(', ')}`);
  }
  const steps = num(v, 'steps', { integer: true, min: 1 });
  const epochs = num(v, 'epochs', { min: 0, minExclusive: true });
  if (steps !== undefined && epochs !== undefined) throw new CliError('give --steps or --epochs, not both');
  const seed = num(v, 'seed', { integer: true });
  const budget = num(v, 'time-budget', { min: 0, minExclusive: true });
  const chat = v.chat === true;
  if (!chat && (v['chat-format'] !== undefined || v['chat-template'] !== undefined)) throw new CliError('--chat-format and --chat-template need --chat');
  const text = chat ? undefined : readText('text', textPath);
  const evalText = !chat && typeof v['eval-text'] === 'string' ? readText('eval-text', v['eval-text']) : undefined;
  const { base, tokenizer, adapter: start } = await loadModel(v);
  const cfg = start
    ? start.config
    : loraConfig({ rank, alpha, targets: targets as never, dropout, freezeA: v['freeze-a'] === true, seed: seed ?? 0 }, 'fedtune train');
  if (start && (rank !== undefined || targets !== undefined)) log('note: --rank/--targets ignored: continuing the adapter given by --adapter');
  const adapter = start ?? LoraAdapter.create(base.config, base.sha256, cfg);
  let data: Int32Array | MaskedTokens;
  let heldOut: Int32Array | MaskedTokens | undefined;
  if (chat) {
    const style = chatStyleFor(tokenizer, v['chat-format'] as string | undefined, v['chat-template'] as string | undefined);
    log(`chat: ${style.format}${style.defaultSystem !== undefined ? ` (default system message ${JSON.stringify(style.defaultSystem)})` : ''}`);
    data = readChatData('text', textPath, tokenizer, style);
    heldOut = typeof v['eval-text'] === 'string' ? readChatData('eval-text', v['eval-text'], tokenizer, style) : undefined;
  } else {
    data = tokenizer.encode(text!, { bos: false });
    heldOut = evalText ? tokenizer.encode(evalText, { bos: false }) : undefined;
  }
  const tokens = data instanceof Int32Array ? data : data.tokens;
  const before = heldOut ? evaluateLoss(base, heldOut, { startId: tokenizer.startId, adapter, maxTokens: 8192 }).loss : undefined;
  const trainer = new LocalTrainer(base, adapter, data, {
    startId: tokenizer.startId,
    steps,
    epochs,
    lr: num(v, 'lr', { min: 0, minExclusive: true }),
    batchSize: num(v, 'batch', { integer: true, min: 1 }),
    seqLen: num(v, 'seq-len', { integer: true, min: 2 }),
    weightDecay: num(v, 'weight-decay', { min: 0 }),
    clipNorm: num(v, 'clip-norm', { min: 0 }),
    timeBudgetMs: budget === undefined ? undefined : budget * 1000,
    seed,
  });
  log(`train: ${tokens.length} tokens${data instanceof Int32Array ? '' : ` (${data.lossMask.reduce((a, x) => a + x, 0)} scored)`}, rank ${cfg.rank}, targets ${cfg.targets.join(',')}, ${adapter.parameterCount} adapter params`);
  trainer.progress$.subscribe({
    next: (p) => {
      if (p.step === 1 || p.step % 10 === 0 || p.step === p.totalSteps) {
        log(`step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} grad-norm ${p.gradNorm.toFixed(3)} ${p.tokensPerSecond.toFixed(0)} tokens/s`);
      }
    },
    error: () => undefined, // run() rejects with the same error, reported once by main
  });
  const r = await trainer.run();
  const after = heldOut ? evaluateLoss(base, heldOut, { startId: tokenizer.startId, adapter, maxTokens: 8192 }).loss : undefined;
  saveAdapter(out, adapter);
  log(`saved ${out}${r.stoppedByBudget ? ' (stopped by the time budget)' : ''}`);
  const summary = { steps: r.steps, tokens: r.tokens, firstLoss: r.firstLoss, lastLoss: r.lastLoss, seconds: r.elapsedMs / 1000, tokensPerSecond: r.tokensPerSecond, heldOutBefore: before, heldOutAfter: after, out };
  if (v.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(`trained ${r.steps} steps: train loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)}\n`);
    if (before !== undefined && after !== undefined) process.stdout.write(`held-out loss ${before.toFixed(4)} -> ${after.toFixed(4)}\n`);
  }
}
