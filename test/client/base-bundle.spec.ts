/** How a device reads the announced base container, and what it does with a bundle that does not unpack to the announced identity. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseContainer, bundledBaseDir, unpackBaseBundle } from '../../client/base-bundle.js';
import { ModelFormatError, randomBase, writeHfBundle, writeHfModel, type LlamaConfig } from '../../model/index.js';

const QWEN2: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 40, seqLen: 32, normEps: 1e-5, arch: 'qwen2', sharedClassifier: true, ropeTheta: 1e6, ropeStyle: 'neox', attnBias: true };
const H = 'cd'.repeat(32);

describe('client: the base as a bundle', () => {
  it('an empty container is a single file (what older coordinators send); only an "hf" ustar bundle with its identity is unpacked', () => {
    assert.equal(baseContainer({ container: '', contentSha256: '', format: 'gguf' }), '');
    assert.equal(baseContainer({ container: 'ustar', contentSha256: H, format: 'hf' }), 'ustar');
    assert.throws(() => baseContainer({ container: 'zip', contentSha256: H, format: 'hf' }), /container "zip", which this device does not know/);
    assert.throws(() => baseContainer({ container: 'ustar', contentSha256: '', format: 'hf' }), /without the identity of its content/);
    assert.throws(() => baseContainer({ container: 'ustar', contentSha256: H, format: 'gguf' }), /unpacks only Hugging Face directories/);
  });

  it('a bundle that unpacks to another identity is refused, nothing is left unpacked and the bundle is dropped for a fresh download', () => {
    const root = mkdtempSync(join(tmpdir(), 'fedtune-client-bundle-'));
    writeHfModel(join(root, 'm'), randomBase(QWEN2, 1), { dtype: 'F16', tokenizerJson: { model: { type: 'BPE' } } });
    const data = join(root, 'device');
    const blob = join(root, 'bundle.tar');
    const written = writeHfBundle(join(root, 'm'), blob);
    const ref = { sha256: written.sha256, sizeBytes: written.size, container: 'ustar', contentSha256: H, format: 'hf' };
    assert.throws(() => unpackBaseBundle(blob, data, ref), (e: unknown) => e instanceof ModelFormatError && e.message.includes(H));
    assert.ok(!existsSync(blob));
    assert.deepEqual(readdirSync(join(data, 'bases')), []);
    writeHfBundle(join(root, 'm'), blob);
    assert.equal(unpackBaseBundle(blob, data, { ...ref, contentSha256: written.identity }), bundledBaseDir(data, written.sha256));
    assert.ok(existsSync(join(bundledBaseDir(data, written.sha256), 'config.json')));
  });
});
