/** The step shapes compared with PyTorch in bench/side-by-side.ts (issue 15). */
import type { LlamaConfig } from '../model/index.js';

/** The two step shapes of issue 15: base config, batch and window length. */
export const SHAPES: Record<string, { config: LlamaConfig; batch: number; seq: number }> = {
  dim256: {
    config: { dim: 256, hiddenDim: 688, nLayers: 4, nHeads: 8, nKvHeads: 8, vocabSize: 512, seqLen: 256, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 },
    batch: 8,
    seq: 128,
  },
  stories260K: {
    config: { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 },
    batch: 8,
    seq: 256,
  },
};
