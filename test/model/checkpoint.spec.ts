import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodeLlama2cCheckpoint, ModelFormatError, parameterCount, parseLlama2cCheckpoint } from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';

describe('model/checkpoint', () => {
  it('reads the stories260K header and identity', async () => {
    const { base } = await realModel();
    const c = base.weights.config;
    assert.deepEqual([c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen], [64, 172, 5, 8, 4, 512, 512]);
    assert.equal(c.sharedClassifier, true);
    assert.equal(base.sha256, 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696');
    assert.ok(Math.abs(parameterCount(c) - 260_000) < 1000);
  });

  it('round-trips through the writer with identical weights', async () => {
    const { base } = await realModel();
    const again = parseLlama2cCheckpoint(encodeLlama2cCheckpoint(base.weights));
    assert.deepEqual(again.weights.layers[3].w2, base.weights.layers[3].w2);
    assert.deepEqual(again.weights.tokenEmbedding, base.weights.tokenEmbedding);
  });

  it('rejects truncated files, wrong sizes and versioned exports with one clear sentence', () => {
    const bytes = readFileSync(MODEL.bin);
    assert.throws(() => parseLlama2cCheckpoint(bytes.subarray(0, bytes.length - 4), 'cut.bin'), (e: Error) => e instanceof ModelFormatError && /cut.bin has 1056536 bytes but its header/.test(e.message));
    assert.throws(() => parseLlama2cCheckpoint(new Uint8Array(10), 'tiny.bin'), /too small/);
    const v1 = Buffer.alloc(256);
    v1.writeUInt32LE(0x616b3432, 0);
    v1.writeInt32LE(1, 4);
    assert.throws(() => parseLlama2cCheckpoint(v1, 'v1.bin'), /versioned llama2.c export/);
    const junk = Buffer.alloc(1000, 0xff);
    assert.throws(() => parseLlama2cCheckpoint(junk, 'junk.bin'), /not a llama2.c checkpoint/);
  });
});
