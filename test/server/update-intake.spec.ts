/** The coordinator's update intake as pure functions: no gRPC, no rounds, synthetic updates. */
import assert from 'node:assert/strict';
import { loraConfig, readBaseInfo, seededRng, nextGaussian } from '../../model/index.js';
import { boxKeyPair, boxSharedKey, seal } from '../../privacy/box.js';
import { l2Norm } from '../../privacy/clip.js';
import { stochasticQuantize } from '../../privacy/compress.js';
import { encodeUpdate, UPDATE_QUANT_BLOCK } from '../../proto/update-codec.js';
import { CoordinatorError } from '../../server/errors.js';
import { boundUpdate, checkNumExamples, defaultMaxUpdateNorm, expandUpdate, intakeUpdate, openSealedUpdate, updateBound, updateLayout } from '../../server/update-intake.js';
import { MODEL } from '../helpers.js';

const refused = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof CoordinatorError && e.kind === 'invalid-argument' && re.test(e.message));

describe('server/update-intake', () => {
  const config = readBaseInfo(MODEL.bin).config;
  const full = updateLayout(config, loraConfig({ rank: 2, alpha: 4, targets: ['wq', 'wv'], seed: 1 }));
  const ffa = updateLayout(config, loraConfig({ rank: 2, alpha: 4, targets: ['wq', 'wv'], seed: 1, freezeA: true }));
  const gaussian = (n: number, scale: number, seed = 1) => {
    const rng = seededRng(seed);
    return Float32Array.from({ length: n }, () => scale * nextGaussian(rng));
  };

  it('a caller that gives up the plaintext gets an f32 update as a view of it (no copy), with the same values and the same refusals', () => {
    const u = gaussian(full.updateLength, 0.01, 5);
    const bound = updateBound(1, 0, full);
    const plain = encodeUpdate(u);
    const copied = intakeUpdate('f32', plain, full, bound);
    const viewed = intakeUpdate('f32', plain, full, bound, true);
    assert.deepEqual(viewed.update, u);
    assert.deepEqual(copied.update, u);
    assert.equal(viewed.update.buffer, plain.buffer);
    assert.notEqual(copied.update.buffer, plain.buffer);
    assert.equal(viewed.norm, l2Norm(u));
    const bad = encodeUpdate(u);
    new Float32Array(bad.buffer, bad.byteOffset, full.updateLength)[9] = Number.POSITIVE_INFINITY;
    refused(() => intakeUpdate('f32', bad, full, bound, true), /non-finite value \(Infinity\) at index 9/);
    refused(() => intakeUpdate('f32', encodeUpdate(u.map((x) => x * 1000)), full, bound, true), /exceeds the round's clip norm 1/);
  });

  it('bounds an update even with no clip norm: 3e38 per value is scaled down to maxUpdateNorm (default √n), not refused', () => {
    const bound = updateBound(0, 0, full);
    assert.deepEqual(bound, { norm: Math.sqrt(full.updateLength), told: false, noiseAllowance: 0 });
    assert.equal(defaultMaxUpdateNorm(full.updateLength), Math.sqrt(full.updateLength));
    const attack = new Float32Array(full.updateLength).fill(3e38);
    const out = intakeUpdate('f32', encodeUpdate(attack), full, bound);
    assert.ok(out.clipped);
    assert.ok(out.update.every(Number.isFinite));
    assert.ok(l2Norm(out.update) <= bound.norm);
    // a configured maxUpdateNorm wins over the default; an honest update passes untouched
    const honest = gaussian(full.updateLength, 1e-3);
    const kept = intakeUpdate('f32', encodeUpdate(honest), full, updateBound(0, 5, full));
    assert.equal(kept.clipped, false);
    assert.deepEqual(kept.update, honest);
    assert.ok(l2Norm(boundUpdate(attack, updateBound(0, 5, full)).update) <= 5);
  });

  it('refuses non-finite values and a norm past the told clip norm; allows rounding and the quantization slack', () => {
    const c = updateBound(0.5, 0, full);
    assert.deepEqual(c, { norm: 0.5, told: true, noiseAllowance: 0 });
    const bad = gaussian(full.updateLength, 1e-3);
    bad[7] = Number.NaN;
    refused(() => intakeUpdate('f32', encodeUpdate(bad), full, c), /non-finite value \(NaN\) at index 7/);
    const long = gaussian(full.updateLength, 1);
    refused(() => intakeUpdate('f32', encodeUpdate(long), full, c), /exceeds the round's clip norm 0.5/);
    // just over C by float rounding: accepted and brought back to C
    const u = gaussian(full.updateLength, 1);
    const atC = u.map((v) => (v * 0.5 * (1 + 5e-7)) / l2Norm(u));
    const back = intakeUpdate('f32', encodeUpdate(atC), full, c);
    assert.ok(l2Norm(back.update) <= 0.5);
    // q4 of an update clipped to C may sit past C by its rounding; its own scales bound that
    const q = intakeUpdate('q4', encodeUpdate(stochasticQuantize(atC, 4, seededRng(3), UPDATE_QUANT_BLOCK)), full, c);
    assert.ok(l2Norm(q.update) <= 0.5);
  });

  it('local / distributed DP: allows the device’s own noise past C and does not clip it away; still refuses a norm past C plus that noise', () => {
    const std = 0.05;
    const bound = updateBound(0.5, 0, full, std);
    assert.ok(bound.noiseAllowance > std * Math.sqrt(full.updateLength));
    const u = gaussian(full.updateLength, 1);
    const clipped = u.map((v) => (v * 0.5 * (1 - 1e-6)) / l2Norm(u));
    const rng = seededRng(9);
    const noisy = clipped.map((v) => v + std * nextGaussian(rng));
    assert.ok(l2Norm(noisy) > 0.5, 'the noise takes the update past C');
    const out = intakeUpdate('f32', encodeUpdate(noisy), full, bound);
    assert.deepEqual(out.update, noisy);
    assert.equal(out.clipped, false);
    const far = noisy.map((v) => v * 10);
    refused(() => intakeUpdate('f32', encodeUpdate(far), full, bound), /exceeds the round's clip norm 0.5 plus .* for the device's own noise/);
  });

  it('a q8 update whose sender chose huge scales cannot pass its slack off as noise: bounded by C plus the noise allowance', () => {
    // reviewer's attack: every block scale 9000, levels alternating +1 / 0 — the slack (from the
    // sender's own scales) covers any norm, and a noised update used to skip clipping
    const std = 0.5;
    const bound = updateBound(0.5, 0, full, std);
    const nb = Math.ceil(full.updateLength / UPDATE_QUANT_BLOCK);
    const q = { bits: 8 as const, length: full.updateLength, block: UPDATE_QUANT_BLOCK, scales: new Float32Array(nb).fill(9000), levels: Int8Array.from({ length: full.updateLength }, (_, i) => (i % 2 === 0 ? 1 : 0)) };
    const out = intakeUpdate('q8', encodeUpdate(q), full, bound);
    assert.ok(out.norm > 1e5, `the attack's norm ${out.norm}`);
    assert.ok(l2Norm(out.update) <= (0.5 + bound.noiseAllowance) * (1 + 1e-6), `kept norm ${l2Norm(out.update)}`);
  });

  it('unpacks an FFA-LoRA update into the flat layout (zeros on A), one layout for all', () => {
    assert.ok(ffa.updateLength < ffa.flatLength);
    assert.equal(ffa.flatLength, full.flatLength);
    const packed = gaussian(ffa.updateLength, 1e-3);
    const flat = intakeUpdate('f32', encodeUpdate(packed), ffa, updateBound(0, 0, ffa)).update;
    assert.equal(flat.length, ffa.flatLength);
    assert.ok(Math.abs(l2Norm(flat) - l2Norm(packed)) < 1e-9);
    assert.deepEqual(expandUpdate(ffa, packed), flat);
    const whole = gaussian(full.updateLength, 1);
    assert.equal(expandUpdate(full, whole), whole, 'nothing to unpack without FFA');
    assert.throws(() => expandUpdate(ffa, packed.subarray(1)), /packed has/);
  });

  it('opens only what the device sealed to the program key, and checks num_examples', () => {
    const program = boxKeyPair();
    const device = boxKeyPair();
    const shared = boxSharedKey(device.publicKey, program);
    const msg = Uint8Array.of(1, 2, 3);
    assert.deepEqual(openSealedUpdate(seal(msg, program.publicKey, device), shared), msg);
    const tampered = seal(msg, program.publicKey, device);
    tampered[tampered.length - 1] ^= 1;
    refused(() => openSealedUpdate(tampered, shared), /could not be decrypted/);
    const training = { steps: 2, batchSize: 4 } as Parameters<typeof checkNumExamples>[1];
    checkNumExamples(8, training);
    refused(() => checkNumExamples(9, training), /num_examples must be an integer in \[1, 8\]/);
    refused(() => checkNumExamples(0.5, training), /num_examples/);
  });
});
