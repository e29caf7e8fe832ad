import assert from 'node:assert/strict';
import { BOS, EOS, ModelFormatError, Tokenizer } from '../../model/index.js';
import { corpus, realModel } from '../helpers.js';

/** The reference algorithm of run.c, written independently: O(n²) merge of the best pair. */
function naiveEncode(tok: Tokenizer, text: string): number[] {
  const lookup = new Map<string, number>();
  tok.pieces.forEach((p, i) => {
    const k = Buffer.from(p).toString('latin1');
    if (!lookup.has(k)) lookup.set(k, i);
  });
  const bytes = Buffer.from(' ' + text, 'utf8');
  const ids: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    let n = 1;
    if (bytes[i] >= 0x80) while (n < 4 && i + n < bytes.length && (bytes[i + n] & 0xc0) === 0x80) n++;
    const id = lookup.get(bytes.toString('latin1', i, i + n));
    if (id !== undefined) ids.push(id);
    else for (let k = 0; k < n; k++) ids.push(bytes[i + k] + 3);
    i += n;
  }
  for (;;) {
    let best = -1e10;
    let at = -1;
    let merged = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const k = Buffer.concat([tok.pieces[ids[i]], tok.pieces[ids[i + 1]]]).toString('latin1');
      const id = lookup.get(k);
      if (id !== undefined && tok.scores[id] > best) {
        best = tok.scores[id];
        at = i;
        merged = id;
      }
    }
    if (at < 0) return ids;
    ids.splice(at, 2, merged);
  }
}

describe('model/tokenizer', () => {
  it('encodes the golden prompt exactly as run.c', async () => {
    const { tokenizer, golden } = await realModel();
    assert.deepEqual([...tokenizer.encode(golden.prompt, { bos: true })], golden.prompt_ids);
  });

  it('matches the naive reference algorithm on real text, including ties and byte fallback', async () => {
    const { tokenizer } = await realModel();
    const samples = [
      corpus('wizard-of-oz.txt').slice(0, 3000),
      corpus('tinyshakespeare.txt').slice(5000, 7000),
      'naïve café — 😀 emoji, tabs\tand\nnewlines  double  spaces',
      'aaaaaaaaaaaaaaaa bbbbbbbb',
    ];
    for (const s of samples) assert.deepEqual([...tokenizer.encode(s, { bos: false })], naiveEncode(tokenizer, s));
  });

  it('decodes back to the original text (byte fallback reassembles UTF-8)', async () => {
    const { tokenizer } = await realModel();
    for (const s of ['Once upon a time, Lily.', 'naïve café — 😀', corpus('wizard-of-oz.txt').slice(100, 900)]) {
      assert.equal(tokenizer.decode([...tokenizer.encode(s, { bos: true }), EOS]), s);
    }
  });

  it('adds BOS by default (llama2.c) and only then, and the empty string has no dummy space', async () => {
    const { tokenizer } = await realModel();
    assert.deepEqual([...tokenizer.encode('')], [BOS]);
    assert.deepEqual([...tokenizer.encode('', { bos: false })], []);
  });

  it('rejects a malformed file with a clear error', () => {
    assert.throws(() => Tokenizer.parse(new Uint8Array([1, 0, 0, 0, 0, 0]), undefined, 'bad.bin'), ModelFormatError);
    assert.throws(() => Tokenizer.fromFile('/nonexistent/tok.bin'), /cannot read tokenizer \/nonexistent\/tok.bin: ENOENT/);
  });

  it('refuses out-of-range ids when decoding', async () => {
    const { tokenizer } = await realModel();
    assert.throws(() => tokenizer.decode([5000]), RangeError);
  });
});
