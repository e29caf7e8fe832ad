/**
 * SecAgg+ (Bell et al. 2020) over the Bonawitz et al. 2017 protocol, as in-process state
 * machines a transport can drive: devices on a k-regular neighbour graph agree pairwise seeds
 * (X25519), Shamir-share their self-mask seed and their key with their neighbours (threshold t,
 * shares sent encrypted with nacl.box through the coordinator), and upload
 * x + PRG(b) + Σ±PRG(s_uv) in Z_(2^32). The coordinator learns only the sum: for devices whose
 * masked input arrived it rebuilds b from neighbours' shares; for devices that dropped before
 * masking it rebuilds their key and removes their pairwise masks — never both for one device.
 * Expected failures are values ({ ok: false, reason }); misuse throws.
 */
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import type { Rng } from '../../random/rng.js';
import { ed25519Sign, ed25519Verify } from '../sign.js';
import { MaskSum } from './mask-sum.js';
import { boxKey, encodeFixed, pairwiseSeeder, x25519, X25519_BASE_POINT } from './masking.js';
import { isValidShare, splitSecret, type Share } from './shamir.js';

/** Round parameters shared by every party. */
export interface SecAggParams {
  /** Unique per round: binds signatures and seeds to it. */
  readonly roundId: string;
  /** Device ids (positive integers) in the round. */
  readonly ids: readonly number[];
  /** Neighbours per device (even, < ids.length). */
  readonly k: number;
  /** Shares needed to rebuild a secret (≤ k). */
  readonly threshold: number;
  /** Update length. */
  readonly length: number;
  /** Fixed-point scale (see fixedPointScale). */
  readonly scale: number;
  /** Seed of the neighbour graph (public). */
  readonly graphSeed: number;
}

/** A device's signed key advertisement. */
export interface KeyAdvert {
  readonly id: number;
  readonly roundId: string;
  readonly maskKey: Uint8Array;
  readonly shareKey: Uint8Array;
  readonly signature: Uint8Array;
  /**
   * {@link selfMaskCommitment} of the device's self-mask seed (sent over the device's signed
   * request, not covered by `signature`): lets the coordinator check the seed it rebuilds. Optional.
   */
  readonly selfMaskCommitment?: Uint8Array;
}

/** An encrypted pair of shares from one device to a neighbour, routed by the coordinator. */
export interface ShareMessage {
  readonly from: number;
  readonly to: number;
  readonly sealed: Uint8Array;
}

/** What the coordinator asks of a survivor: which owners' self-mask shares, which owners' key shares. */
export interface UnmaskRequest {
  readonly selfMaskOf: readonly number[];
  readonly keyOf: readonly number[];
}

/** A survivor's answer: shares by owner. */
export interface UnmaskResponse {
  readonly from: number;
  readonly selfMask: ReadonlyMap<number, Share>;
  readonly key: ReadonlyMap<number, Share>;
}

/**
 * Check round parameters; every party calls this. SecAgg+ needs k/2 < t ≤ k: with t ≤ k/2 two
 * disjoint halves of a device's neighbours could each rebuild a different one of its secrets.
 */
export function validateParams(p: SecAggParams, where = 'SecAggParams'): SecAggParams {
  if (typeof p.roundId !== 'string' || p.roundId === '' || p.roundId.includes('|')) throw new RangeError(`${where}: roundId must be a non-empty string without "|"`);
  checkIds(where, p.ids);
  if (!Number.isInteger(p.k) || p.k < 2 || p.k % 2 !== 0 || p.k >= p.ids.length) throw new RangeError(`${where}: k must be even and in [2, ${p.ids.length - 1}], got ${p.k}`);
  if (!Number.isInteger(p.threshold) || p.threshold <= p.k / 2 || p.threshold > p.k) throw new RangeError(`${where}: threshold must be an integer in (k/2, k] = (${p.k / 2}, ${p.k}], got ${p.threshold}`);
  if (!Number.isInteger(p.length) || p.length < 1) throw new RangeError(`${where}: length must be a positive integer, got ${p.length}`);
  if (!Number.isFinite(p.scale) || p.scale < 1) throw new RangeError(`${where}: scale must be ≥ 1, got ${p.scale}`);
  return p;
}

function checkIds(where: string, ids: readonly number[]): void {
  if (!Array.isArray(ids) || ids.length < 3) throw new RangeError(`${where}: ids must list at least 3 devices`);
  if (ids.some((x) => !Number.isSafeInteger(x) || x <= 0) || new Set(ids).size !== ids.length) throw new RangeError(`${where}: ids must be distinct positive integers`);
}

/**
 * The k-regular neighbour graph: the ids on a ring in a seeded random order, each linked to its
 * k/2 nearest on either side (a random circulant graph).
 */
export function neighbourGraph(ids: readonly number[], k: number, seed: number): Map<number, number[]> {
  checkIds('neighbourGraph', ids);
  if (!Number.isInteger(k) || k < 2 || k % 2 !== 0 || k >= ids.length) throw new RangeError(`neighbourGraph: k must be even and in [2, ${ids.length - 1}], got ${k}`);
  const ring = [...ids];
  let s = seed >>> 0 || 1;
  for (let i = ring.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [ring[i], ring[j]] = [ring[j], ring[i]];
  }
  const g = new Map<number, number[]>();
  ring.forEach((id, i) => {
    const nb: number[] = [];
    for (let d = 1; d <= k / 2; d++) nb.push(ring[(i + d) % ring.length], ring[(i - d + ring.length) % ring.length]);
    g.set(id, nb.sort((a, b) => a - b));
  });
  return g;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const advertMessage = (a: { id: number; roundId: string; maskKey: Uint8Array; shareKey: Uint8Array }): Uint8Array =>
  new TextEncoder().encode(`fedtune.secagg.v2|${a.roundId}|${a.id}|${hex(a.maskKey)}|${hex(a.shareKey)}`);

// Ed25519 in node:crypto (OpenSSL): the same signatures as tweetnacl (Ed25519 is deterministic),
// ~50× faster to verify in pure JS's place; adverts are verified k times per device and n times
// by the coordinator.
/**
 * SHA-256(UTF-8 "fedtune.secagg.selfmask.v1|<roundId>|<id>|" ‖ seed): a device's commitment to its
 * 32-byte self-mask seed. Hiding (the seed is 32 random bytes) and binding, so the coordinator can
 * tell a seed rebuilt from false shares from the real one.
 */
export function selfMaskCommitment(roundId: string, id: number, seed: Uint8Array): Uint8Array {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('selfMaskCommitment: seed must be 32 bytes');
  const h = createHash('sha256').update(`fedtune.secagg.selfmask.v1|${roundId}|${id}|`, 'utf8').update(seed).digest();
  return new Uint8Array(h.buffer, h.byteOffset, h.length);
}

/** True if an advert is signed by `signPublicKey` for this round (and any commitment it carries is 32 bytes). */
export function verifyAdvert(a: KeyAdvert, roundId: string, signPublicKey: Uint8Array): boolean {
  if (a.roundId !== roundId || !Number.isSafeInteger(a.id) || a.id <= 0 || !(a.signature instanceof Uint8Array) || a.signature.length !== nacl.sign.signatureLength) return false;
  // the keys are signed by their owner, who may still sign malformed ones: 32-byte X25519 keys only
  if (!(a.maskKey instanceof Uint8Array) || a.maskKey.length !== 32 || !(a.shareKey instanceof Uint8Array) || a.shareKey.length !== 32) return false;
  if (a.selfMaskCommitment !== undefined && (!(a.selfMaskCommitment instanceof Uint8Array) || a.selfMaskCommitment.length !== 32)) return false;
  return ed25519Verify(advertMessage(a), a.signature, signPublicKey);
}

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = rng.nextU32();
    for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
  }
  return out;
}

/** nacl.box.keyPair.fromSecretKey, with the X25519 base multiplication in OpenSSL. */
const boxKeyPair = (secretKey: Uint8Array): nacl.BoxKeyPair => ({ publicKey: x25519(secretKey, X25519_BASE_POINT), secretKey });

/**
 * The pair of shares in a decrypted share message (a neighbour's bytes: anything may be in them),
 * or null if it is not exactly {from, to, b, k} with hex field elements for this pair of devices.
 */
function parseSharePair(plain: Uint8Array, from: number, to: number): { selfMask: Share; key: Share } | null {
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
  if (typeof j !== 'object' || j === null) return null;
  const { from: f, to: t, b, k } = j as Record<string, unknown>;
  const hexField = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{1,131}$/.test(v);
  if (f !== from || t !== to || !hexField(b) || !hexField(k)) return null;
  const pair = { selfMask: { x: to, y: BigInt(`0x${b}`) }, key: { x: to, y: BigInt(`0x${k}`) } };
  return isValidShare(pair.selfMask) && isValidShare(pair.key) ? pair : null;
}

/** One device's side of a round. */
export class SecAggDevice {
  private readonly mask: nacl.BoxKeyPair;
  private readonly share: nacl.BoxKeyPair;
  private readonly selfSeed: Uint8Array;
  private readonly neighbours: number[];
  private peers = new Map<number, KeyAdvert>();
  private held = new Map<number, { selfMask: Share; key: Share }>();
  private maskWith: number[] = [];
  private answered = false;

  constructor(
    readonly id: number,
    private readonly params: SecAggParams,
    private readonly signSecretKey: Uint8Array,
    private readonly rng: Rng,
  ) {
    validateParams(params, 'SecAggDevice');
    this.neighbours = neighbourGraph(params.ids, params.k, params.graphSeed).get(id) ?? [];
    if (this.neighbours.length === 0) throw new RangeError(`SecAggDevice: id ${id} is not in the round`);
    this.mask = boxKeyPair(randomBytes(rng, 32));
    this.share = boxKeyPair(randomBytes(rng, 32));
    this.selfSeed = randomBytes(rng, 32);
  }

  /** Step 1: the signed advertisement of this device's two public keys. */
  advertise(): KeyAdvert {
    const a = { id: this.id, roundId: this.params.roundId, maskKey: this.mask.publicKey, shareKey: this.share.publicKey };
    return { ...a, signature: ed25519Sign(advertMessage(a), this.signSecretKey), selfMaskCommitment: selfMaskCommitment(this.params.roundId, this.id, this.selfSeed) };
  }

  /** Step 2: check neighbours' adverts, then share b and the mask key with them (encrypted). */
  shareKeys(adverts: ReadonlyMap<number, KeyAdvert>, signKeys: ReadonlyMap<number, Uint8Array>): ShareMessage[] {
    for (const v of this.neighbours) {
      const a = adverts.get(v);
      const pk = signKeys.get(v);
      if (a && pk && a.id === v && verifyAdvert(a, this.params.roundId, pk)) this.peers.set(v, a);
    }
    const holders = [...this.peers.keys()];
    if (holders.length < this.params.threshold) throw new RangeError(`SecAggDevice.shareKeys: only ${holders.length} verified neighbours, threshold is ${this.params.threshold}`);
    const bShares = splitSecret(this.selfSeed, holders, this.params.threshold, this.rng);
    const kShares = splitSecret(this.mask.secretKey, holders, this.params.threshold, this.rng);
    return holders.map((v, i) => {
      const plain = new TextEncoder().encode(JSON.stringify({ from: this.id, to: v, b: bShares[i].y.toString(16), k: kShares[i].y.toString(16) }));
      const nonce = randomBytes(this.rng, nacl.box.nonceLength);
      const ct = nacl.secretbox(plain, nonce, boxKey(this.peers.get(v)!.shareKey, this.share.secretKey)); // = nacl.box
      const sealed = new Uint8Array(nonce.length + ct.length);
      sealed.set(nonce);
      sealed.set(ct, nonce.length);
      return { from: this.id, to: v, sealed };
    });
  }

  /**
   * Step 2′: keep the shares neighbours sent to this device. `senders` is the coordinator's list
   * of devices whose shares it routed (U₁): this device masks with exactly its neighbours in it,
   * and throws (aborts the round) if any of them has no valid share here — otherwise its pairwise
   * masks could not be matched and the sum would be silently wrong.
   */
  receiveShares(messages: readonly ShareMessage[], senders: readonly number[]): number {
    for (const m of messages) {
      const a = this.peers.get(m.from);
      if (!a || m.to !== this.id) continue;
      if (!(m.sealed instanceof Uint8Array) || m.sealed.length < nacl.box.nonceLength + nacl.secretbox.overheadLength) continue;
      const plain = nacl.secretbox.open(m.sealed.subarray(nacl.box.nonceLength), m.sealed.subarray(0, nacl.box.nonceLength), boxKey(a.shareKey, this.share.secretKey)); // = nacl.box.open
      if (!plain) continue;
      const held = parseSharePair(plain, m.from, this.id);
      if (held) this.held.set(m.from, held);
    }
    this.maskWith = this.neighbours.filter((v) => senders.includes(v));
    const missing = this.maskWith.filter((v) => !this.held.has(v));
    if (missing.length > 0) throw new RangeError(`SecAggDevice.receiveShares: no valid share from announced neighbour ${missing[0]}; aborting the round`);
    return this.held.size;
  }

  /** Step 3: the masked, fixed-point encoded update. */
  maskedInput(update: Float32Array): Uint32Array {
    if (update.length !== this.params.length) throw new RangeError(`SecAggDevice.maskedInput: update has ${update.length} values, expected ${this.params.length}`);
    const y = new MaskSum(this.params.length).add(encodeFixed(update, this.params.scale)).addMask(this.selfSeed, 1);
    // pairwise masks with exactly the announced senders among the neighbours (U₁ ∩ neighbours)
    const seedWith = pairwiseSeeder(this.mask.secretKey);
    for (const v of this.maskWith) {
      const a = this.peers.get(v)!;
      y.addMask(seedWith(a.maskKey, `${this.params.roundId}|${Math.min(this.id, v)}|${Math.max(this.id, v)}`), this.id < v ? 1 : -1);
    }
    return y.toUint32Array();
  }

  /**
   * Step 4: reveal the requested shares, once per round; refuses a request naming one owner for
   * both kinds, and any second request (which could ask for the other secret of the same device).
   */
  unmask(req: UnmaskRequest): UnmaskResponse {
    if (this.answered) throw new RangeError('SecAggDevice.unmask: this device already answered an unmask request this round');
    this.answered = true;
    const both = req.selfMaskOf.filter((o) => req.keyOf.includes(o));
    if (both.length > 0) throw new RangeError(`SecAggDevice.unmask: the coordinator asked for both secrets of device ${both[0]}`);
    const selfMask = new Map<number, Share>();
    const key = new Map<number, Share>();
    for (const o of req.selfMaskOf) if (this.held.has(o)) selfMask.set(o, this.held.get(o)!.selfMask);
    for (const o of req.keyOf) if (this.held.has(o)) key.set(o, this.held.get(o)!.key);
    return { from: this.id, selfMask, key };
  }
}
