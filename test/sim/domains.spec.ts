import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMAIN_NAMES, loadDomains, loadTinyStoriesHeldOut, stripBrownTags, type Domain } from '../../sim/domains.js';

/** 160-char probes from evenly spaced places in `text` (skipping its ragged edges). */
function probes(text: string, count = 8): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = Math.floor(((i + 0.5) / count) * (text.length - 200));
    out.push(text.slice(at, at + 160));
  }
  return out;
}

describe('sim/domains', () => {
  let capped: Domain[];
  before(() => {
    capped = loadDomains({ devicesPerDomain: 3, maxTrainCharsPerDevice: 30_000, heldOutChars: 9_000, seed: 5 });
  });

  it('loads every domain with non-empty device text and held-out text of the asked sizes', () => {
    assert.deepEqual(
      capped.map((d) => d.name),
      [...DOMAIN_NAMES],
    );
    for (const d of capped) {
      assert.equal(d.devices.length, 3, d.name);
      for (const dev of d.devices) {
        assert.ok(dev.text.length > 20_000 && dev.text.length <= 30_000, `${d.name}: ${dev.text.length} chars`);
        assert.ok(dev.source.length > 0);
      }
      assert.ok(d.heldOut.length > 8_000 && d.heldOut.length <= 9_000 + 10, `${d.name} held-out: ${d.heldOut.length} chars`);
    }
  });

  it('device shards and held-out text are pairwise disjoint, and devices hold different parts (non-IID)', () => {
    for (const d of capped) {
      const pieces = [...d.devices.map((x) => x.text), d.heldOut];
      for (let a = 0; a < pieces.length; a++) {
        for (let b = 0; b < pieces.length; b++) {
          if (a === b) continue;
          for (const p of probes(pieces[a])) assert.ok(!pieces[b].includes(p), `${d.name}: piece ${a} overlaps piece ${b}: ${JSON.stringify(p)}`);
        }
      }
      assert.equal(new Set(d.devices.map((x) => x.source)).size, d.devices.length, `${d.name}: ${d.devices.map((x) => x.source).join(' | ')}`);
    }
    const brown = capped.find((d) => d.name === 'brown')!;
    assert.match(brown.devices[0].source, /news|editorial|reviews|religion|hobbies/);
    assert.match(brown.devices[2].source, /learned|fiction|mystery|adventure|romance|humor/);
  });

  it('is deterministic for a seed; another seed moves the capped shards', () => {
    const again = loadDomains({ devicesPerDomain: 3, maxTrainCharsPerDevice: 30_000, heldOutChars: 9_000, seed: 5 });
    assert.deepEqual(again, capped);
    const other = loadDomains({ devicesPerDomain: 3, maxTrainCharsPerDevice: 30_000, heldOutChars: 9_000, seed: 6, domains: ['moby-dick'] });
    assert.notEqual(other[0].devices[0].text, capped[2].devices[0].text);
  });

  it('uncapped devices take their whole group except the held-out share; heldOutChars defaults to ~20k', () => {
    const [oz] = loadDomains({ domains: ['oz'] });
    assert.equal(oz.devices.length, 2);
    assert.ok(Math.abs(oz.heldOut.length - 20_000) < 50, `${oz.heldOut.length}`);
    const total = oz.devices.reduce((s, x) => s + x.text.length, 0) + oz.heldOut.length;
    assert.ok(total > 200_000, `${total}`);
    assert.ok(oz.devices[0].text.startsWith('Dorothy lived in the midst of the great Kansas prairies'));
  });

  it('strips Brown POS tags back to plain text with natural spacing', () => {
    const line =
      "The/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.";
    assert.equal(
      stripBrownTags(line),
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
    );
    assert.equal(stripBrownTags('He/pps said/vbd ,/, ``/`` Yes/rb (/( maybe/rb )/) !/. \'\'/\'\' 1/2/cd'), 'He said, "Yes (maybe)!" 1/2');
    const brown = capped.find((d) => d.name === 'brown')!;
    for (const t of [brown.devices[0].text, brown.heldOut]) assert.doesNotMatch(t, /\w\/[a-z$*+-]+\b(?![\w/])/i);
  });

  it('rejects bad options with a RangeError naming the option', () => {
    assert.throws(() => loadDomains({ devicesPerDomain: 0 }), (e: Error) => e instanceof RangeError && /devicesPerDomain/.test(e.message));
    assert.throws(() => loadDomains({ devicesPerDomain: 1.5 }), (e: Error) => e instanceof RangeError && /devicesPerDomain/.test(e.message));
    assert.throws(() => loadDomains({ heldOutChars: -5 }), (e: Error) => e instanceof RangeError && /heldOutChars/.test(e.message));
    assert.throws(() => loadDomains({ maxTrainCharsPerDevice: Number.NaN }), (e: Error) => e instanceof RangeError && /maxTrainCharsPerDevice/.test(e.message));
    assert.throws(() => loadDomains({ seed: -1 }), (e: Error) => e instanceof RangeError && /seed/.test(e.message));
    assert.throws(() => loadDomains({ domains: ['klingon' as 'oz'] }), (e: Error) => e instanceof RangeError && /klingon/.test(e.message));
    assert.throws(() => loadDomains({ devicesPerDomain: 200, domains: ['oz'] }), (e: Error) => e instanceof RangeError && /too small|fewer/.test(e.message));
    assert.throws(() => loadTinyStoriesHeldOut(0), RangeError);
  });

  it('names the missing corpus file when the data folder lacks it', () => {
    const empty = mkdtempSync(join(tmpdir(), 'fedtune-domains-'));
    const saved = process.env.FEDTUNE_DATA_DIR;
    process.env.FEDTUNE_DATA_DIR = empty;
    try {
      assert.throws(() => loadDomains({ domains: ['shakespeare'] }), /tinyshakespeare\.txt is missing/);
      assert.throws(() => loadTinyStoriesHeldOut(100), /tinystories-sample\.txt is missing/);
    } finally {
      if (saved === undefined) delete process.env.FEDTUNE_DATA_DIR;
      else process.env.FEDTUNE_DATA_DIR = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('gives TinyStories held-out text for the forgetting probe', () => {
    const t = loadTinyStoriesHeldOut(5_000);
    assert.ok(t.length > 4_500 && t.length <= 5_000);
    assert.match(t, /^One day, a little girl/);
  });
});
