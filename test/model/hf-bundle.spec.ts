/**
 * A Hugging Face directory as one bundle: exactly its identity files go in, the identity is the
 * documented sha256sum-style listing hash (recomputed here with node:crypto alone), and unpacking
 * refuses extra files and a content whose identity is not the one announced.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hfBaseInfo, ModelFormatError, randomBase, unpackHfBundle, writeHfBundle, writeHfModel, type LlamaConfig } from '../../model/index.js';

const QWEN2: LlamaConfig = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 80, seqLen: 64, normEps: 1e-5, arch: 'qwen2', sharedClassifier: true, ropeTheta: 1e6, ropeStyle: 'neox', attnBias: true };
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The identity as the README documents it: SHA-256 of `<sha256>  <file>\n` over the sorted files. */
function listingHash(dir: string, files: string[]): string {
  return sha(Buffer.from([...files].sort().map((f) => `${sha(readFileSync(join(dir, f)))}  ${f}\n`).join(''), 'utf8'));
}

describe('model: a Hugging Face directory as a ustar bundle', () => {
  const root = mkdtempSync(join(tmpdir(), 'fedtune-hfbundle-'));
  const dir = join(root, 'model');
  writeHfModel(dir, randomBase(QWEN2, 3, { randomVectors: true }), { dtype: 'BF16', shards: 2, tokenizerJson: { model: { type: 'BPE' } }, tokenizerConfig: { eos_token: '<|im_end|>' } });
  writeFileSync(join(dir, 'README.md'), 'not part of the identity\n');
  const identityFiles = ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'];
  const bundle = join(root, 'bundle.tar');
  const written = writeHfBundle(dir, bundle);

  it('bundles exactly the identity files, and reports the documented identity', () => {
    assert.deepEqual(written.files, identityFiles);
    assert.equal(written.identity, listingHash(dir, identityFiles));
    assert.equal(written.identity, hfBaseInfo(dir).sha256);
    assert.deepEqual(execFileSync('tar', ['-tf', bundle], { encoding: 'utf8' }).trim().split('\n'), identityFiles);
  });

  it('unpacks into a directory with the same identity, and identical files', () => {
    const out = unpackHfBundle(bundle, join(root, 'unpacked'), { identity: written.identity, maxBytes: written.size });
    assert.deepEqual(readdirSync(out).sort(), identityFiles);
    for (const f of identityFiles) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(dir, f))), f);
    assert.equal(hfBaseInfo(out).sha256, written.identity);
    assert.deepEqual(readdirSync(root).filter((f) => f.includes('unpacking')), []);
  });

  it('refuses a bundle whose content is not the announced identity, leaving nothing behind', () => {
    const other = 'ab'.repeat(32);
    const dest = join(root, 'wrong');
    assert.throws(() => unpackHfBundle(bundle, dest, { identity: other }), (e: unknown) => e instanceof ModelFormatError && e.message.includes(written.identity) && e.message.includes(other));
    assert.ok(!existsSync(dest));
    assert.deepEqual(readdirSync(root).filter((f) => f.includes('unpacking')), []);
  });

  it('refuses a tar of the directory that holds a file outside the identity, or lacks the weights', () => {
    const extra = join(root, 'extra.tar');
    execFileSync('tar', ['--format=ustar', '-cf', extra, ...identityFiles, 'README.md'], { cwd: dir });
    assert.throws(() => unpackHfBundle(extra, join(root, 'extra'), { identity: written.identity }), (e: unknown) => e instanceof ModelFormatError && /README\.md, which is not part of a checkpoint's identity/.test(e.message));
    const partial = join(root, 'partial.tar');
    execFileSync('tar', ['--format=ustar', '-cf', partial, 'config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors'], { cwd: dir });
    assert.throws(() => unpackHfBundle(partial, join(root, 'partial'), { identity: written.identity }), (e: unknown) => e instanceof ModelFormatError && /model-00002-of-00002\.safetensors/.test(e.message));
    assert.ok(!existsSync(join(root, 'extra')) && !existsSync(join(root, 'partial')));
  });

  it('a tar of the same files made by GNU tar unpacks to the same identity (the container is standard)', () => {
    const theirs = join(root, 'theirs.tar');
    execFileSync('tar', ['--format=ustar', '-cf', theirs, ...identityFiles], { cwd: dir });
    const out = unpackHfBundle(theirs, join(root, 'theirs'), { identity: written.identity });
    assert.equal(listingHash(out, identityFiles), written.identity);
  });
});
