/**
 * The main demo for now: one device tunes a LoRA adapter for the shared stories260K base on
 * real text it holds (The Wonderful Wizard of Oz), with the base frozen and quantized, then
 * shows what changed: held-out loss on Oz (the device's domain) and on TinyStories (forgetting),
 * and a sample before and after. Usage: npm run demo [-- --steps N --quant none|int8|int4 --out FILE]
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  createBase,
  defaultBasePath,
  defaultDataDir,
  defaultTokenizerPath,
  evaluateLoss,
  generate,
  initBackend,
  LocalTrainer,
  LoraAdapter,
  readLlama2cCheckpoint,
  saveAdapter,
  Tokenizer,
  type QuantMode,
} from '../model/index.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '150' },
    quant: { type: 'string', default: 'int8' },
    out: { type: 'string', default: 'out/oz-adapter.safetensors' },
    seed: { type: 'string', default: '1' },
  },
});
const steps = Number(values.steps);
const seed = Number(values.seed);
const quant = values.quant as QuantMode;

const info = await initBackend();
console.log(`backend: ${info.description}`);
const loaded = readLlama2cCheckpoint(defaultBasePath());
const tokenizer = Tokenizer.fromFile(defaultTokenizerPath(), loaded.weights.config.vocabSize);
const base = createBase(loaded, quant, { tokenizer });
const mem = base.memory();
console.log(`base: stories260K, ${mem.params} params, quant ${quant}: ${mem.bytes} bytes (${mem.bytesPerParam.toFixed(3)} bytes/param)`);

const oz = tokenizer.encode(readFileSync(join(defaultDataDir(), 'wizard-of-oz.txt'), 'utf8'), { bos: false });
const cut = Math.floor(oz.length * 0.9);
const train = oz.subarray(0, cut);
const heldOut = oz.subarray(cut);
const stories = tokenizer.encode(readFileSync(join(defaultDataDir(), 'tinystories-sample.txt'), 'utf8'), { bos: false }).subarray(0, 16384);
const prompt = 'Dorothy and the Scarecrow';

const adapter = LoraAdapter.create(base.config, base.sha256, { rank: 8, alpha: 16, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'], seed });
const measure = (): { oz: number; stories: number } => ({
  oz: evaluateLoss(base, heldOut, { startId: tokenizer.startId, adapter }).loss,
  stories: evaluateLoss(base, stories, { startId: tokenizer.startId, adapter }).loss,
});
const before = measure();
console.log(`\nbefore: ${prompt}${generate(base, tokenizer, prompt, { maxTokens: 60, temperature: 0.8, seed, adapter }).text}`);

console.log(`\ntraining ${adapter.parameterCount} adapter parameters on ${train.length} Oz tokens for ${steps} steps…`);
const trainer = new LocalTrainer(base, adapter, train, { startId: tokenizer.startId, steps, lr: 4e-3, batchSize: 8, seqLen: 128, seed });
trainer.progress$.subscribe((p) => {
  if (p.step % 25 === 0 || p.step === p.totalSteps) console.log(`  step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(3)}  ${p.tokensPerSecond.toFixed(0)} tokens/s`);
});
const r = await trainer.run();
const after = measure();
console.log(`\nafter:  ${prompt}${generate(base, tokenizer, prompt, { maxTokens: 60, temperature: 0.8, seed, adapter }).text}`);

console.log('\n| held-out loss (nats/token) | base  | tuned | change |');
console.log('|---|---|---|---|');
console.log(`| Oz (this device's domain)   | ${before.oz.toFixed(3)} | ${after.oz.toFixed(3)} | ${(after.oz - before.oz).toFixed(3)} |`);
console.log(`| TinyStories (forgetting)    | ${before.stories.toFixed(3)} | ${after.stories.toFixed(3)} | ${(after.stories - before.stories).toFixed(3)} |`);
console.log(`\n${r.steps} steps, ${r.tokens} tokens in ${(r.elapsedMs / 1000).toFixed(1)} s (${r.tokensPerSecond.toFixed(0)} tokens/s)`);
mkdirSync(dirname(values.out as string), { recursive: true });
saveAdapter(values.out as string, adapter);
console.log(`adapter saved to ${values.out}`);
