/** Test programs over the real stories260K base. */
import { programSpec } from '../../server/index.js';
import { MODEL } from '../helpers.js';

/** The enrolment token of test programs. */
export const TOKEN = 'oz-partner-secret';

/** A small but real program: stories260K, rank-4 LoRA on wq/wv, a few steps per round. */
export function smallProgram(id: string, over: Record<string, unknown> = {}) {
  return programSpec({
    id,
    base: MODEL.bin,
    tokenizer: MODEL.tok,
    enrolmentToken: TOKEN,
    lora: { rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'], seed: 5 },
    training: { steps: 6, batchSize: 4, seqLen: 64, lr: 1e-2, quant: 'int8' },
    cohortSize: 3,
    minUpdates: 3,
    // explicit: a published version needs at least two devices' updates (tests of one-device rounds set 1)
    minContributors: 2,
    overSelect: 1,
    rounds: 2,
    roundDeadlineMs: 120_000,
    retryDelayMs: 200,
    ...over,
  });
}

