import fc from 'fast-check';
import { decoderTargets, realInputs } from './decoder-targets.js';

/** Cases per decoder target in `npm test` (bench/fuzz.ts runs thousands). */
const RUNS = 60;

describe('fuzz: decoders refuse malformed input with their own error type (fast-check)', function () {
  this.timeout(60_000);
  const targets = decoderTargets(realInputs());
  for (const t of targets) {
    it(t.name, () => {
      fc.assert(
        fc.property(t.input, (x) => {
          t.run(x);
        }),
        { numRuns: RUNS },
      );
    });
  }
});
