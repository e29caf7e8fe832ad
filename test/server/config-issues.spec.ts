/** Wording of config problems: the edit distance behind "did you mean", paths, sentences. */
import assert from 'node:assert/strict';
import { closestKey, editDistance, formatPath, issueSentence, unknownKeyMessage } from '../../server/config-issues.js';

describe('server: config issue wording', () => {
  it('editDistance is the optimal-string-alignment distance (published examples)', () => {
    // Levenshtein's classic: kitten → sitting is 3; an adjacent swap costs 1 (Damerau)
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('stesp', 'steps'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('same', 'same'), 0);
    // Wikipedia's OSA example: CA → ABC is 3 under OSA (2 under unrestricted Damerau–Levenshtein)
    assert.equal(editDistance('CA', 'ABC'), 3);
    // symmetric
    for (const [a, b] of [['population', 'popluation'], ['abc', 'xyz'], ['rank', 'rnak']]) assert.equal(editDistance(a, b), editDistance(b, a));
    assert.throws(() => editDistance(1 as unknown as string, 'a'), TypeError);
  });

  it('suggests the closest allowed key within distance 2, else lists the keys', () => {
    const keys = ['steps', 'batchSize', 'seqLen', 'lr'];
    assert.equal(closestKey('stesp', keys), 'steps');
    assert.equal(closestKey('batchsize', keys), 'batchSize');
    assert.equal(closestKey('seqlength', keys), undefined);
    assert.equal(closestKey('lrr', keys), 'lr');
    assert.equal(unknownKeyMessage('stesp', keys), 'unknown key; did you mean "steps"?');
    assert.equal(unknownKeyMessage('epochs', keys), 'unknown key; expected one of steps, batchSize, seqLen, lr');
  });

  it('paths and sentences', () => {
    assert.equal(formatPath(['programs', 0, 'training', 'stesp']), 'programs[0].training.stesp');
    assert.equal(formatPath(['lora', 'targets', 1]), 'lora.targets[1]');
    assert.equal(issueSentence({ path: ['programs', 0, 'training', 'stesp'], message: 'unknown key; did you mean "steps"?' }, 'config'), 'programs[0].training.stesp: unknown key; did you mean "steps"?');
    assert.equal(issueSentence({ path: ['rounds'], message: 'must be a positive integer, got 0' }, 'program', 'program "p": '), 'program "p": rounds must be a positive integer, got 0');
    assert.equal(issueSentence({ path: [], message: 'must be an object, got 3' }, 'config x.json'), 'config x.json must be an object, got 3');
  });
});
