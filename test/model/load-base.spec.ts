import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBase, encodeLlama2cCheckpoint, loadBase, logitsFor, ModelFormatError, randomBase } from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';

describe('model/load-base (streaming quantized load)', () => {
  it('int8 streamed from the file equals int8 quantized from the loaded fp32 weights', async () => {
    const { base: loaded, tokenizer } = await realModel();
    const streamed = loadBase(MODEL.bin, 'int8');
    const direct = createBase(loaded, 'int8');
    assert.equal(streamed.sha256, loaded.sha256);
    assert.deepEqual(streamed.memory(), direct.memory());
    const ids = tokenizer.encode('The little bird sang a song.', { bos: true });
    const a = logitsFor(streamed, ids);
    logitsFor(direct, ids).forEach((row, t) => assert.deepEqual(a[t], row));
    streamed.dispose();
    direct.dispose();
  });

  it('streams an unshared output head too, and rejects truncated files', async () => {
    await realModel();
    const cfg = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, seqLen: 64, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-load-'));
    const file = join(dir, 'unshared.bin');
    const loaded = randomBase(cfg, 3);
    writeFileSync(file, encodeLlama2cCheckpoint(loaded.weights));
    const streamed = loadBase(file, 'int8');
    const ids = Int32Array.of(1, 5, 200, 299);
    const ref = createBase({ ...loaded, sha256: streamed.sha256 }, 'int8');
    const a = logitsFor(streamed, ids);
    logitsFor(ref, ids).forEach((row, t) => assert.deepEqual(a[t], row));
    streamed.dispose();
    ref.dispose();
    const cut = join(dir, 'cut.bin');
    writeFileSync(cut, readFileSync(file).subarray(0, 5000));
    assert.throws(() => loadBase(cut, 'int8'), (e: Error) => e instanceof ModelFormatError && /cut.bin has 5000 bytes/.test(e.message));
    assert.throws(() => loadBase(join(dir, 'none.bin'), 'int8'), /cannot read base model .*ENOENT/);
  });
});
