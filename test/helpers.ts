/** Shared test fixtures: the real stories260K model and corpora, read by path from ../shared. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDataDir, defaultModelDir, initBackend, readLlama2cCheckpoint, Tokenizer, type LoadedBase } from '../model/index.js';

/** Paths of the model files (FEDTUNE_MODEL_DIR or ../shared/models/stories260K). */
export const MODEL = {
  dir: defaultModelDir(),
  bin: join(defaultModelDir(), 'stories260K.bin'),
  gguf: join(defaultModelDir(), 'stories260K.gguf'),
  tok: join(defaultModelDir(), 'tok512.bin'),
  golden: join(defaultModelDir(), 'golden', 'once-upon-a-time.json'),
};

/** The golden reference from llama2.c run.c. */
export interface Golden {
  prompt: string;
  prompt_ids: number[];
  logits: number[][];
  greedy_ids: number[];
  greedy_text: string;
}

/** Read a corpus from the shared data folder. */
export function corpus(name: 'tinystories-sample.txt' | 'wizard-of-oz.txt' | 'tinyshakespeare.txt'): string {
  const p = join(defaultDataDir(), name);
  if (!existsSync(p)) throw new Error(`test corpus ${p} is missing: set FEDTUNE_DATA_DIR or put shared/ beside the project`);
  return readFileSync(p, 'utf8');
}

let cached: { base: LoadedBase; tokenizer: Tokenizer; golden: Golden } | undefined;

/** Start the backend and load the real model once per test process. */
export async function realModel(): Promise<{ base: LoadedBase; tokenizer: Tokenizer; golden: Golden }> {
  await initBackend();
  if (!cached) {
    if (!existsSync(MODEL.bin)) throw new Error(`test model ${MODEL.bin} is missing: set FEDTUNE_MODEL_DIR or put shared/ beside the project`);
    const base = readLlama2cCheckpoint(MODEL.bin);
    cached = { base, tokenizer: Tokenizer.fromFile(MODEL.tok, base.weights.config.vocabSize), golden: JSON.parse(readFileSync(MODEL.golden, 'utf8')) as Golden };
  }
  return cached;
}

/** Largest absolute difference between two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
