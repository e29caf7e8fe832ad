/**
 * The coordinator's side of a SecAgg+ round: checks adverts, routes encrypted shares, sums
 * masked inputs, and at the end removes the masks it may remove (see protocol.ts).
 */
import { MaskSum } from './mask-sum.js';
import { decodeFixed, pairwiseSeeder, x25519, X25519_BASE_POINT } from './masking.js';
import { neighbourGraph, selfMaskCommitment, validateParams, verifyAdvert, type KeyAdvert, type SecAggParams, type ShareMessage, type UnmaskRequest, type UnmaskResponse } from './protocol.js';
import { isValidShare, MAX_RECOVERY_CANDIDATES, recoverSecret, type Share } from './shamir.js';

/**
 * Candidate share sets one round may examine beyond one per secret while rebuilding secrets
 * around false shares (~0.15–0.3 s per 4096 at k = 14–30): past it the round fails, so colluding
 * liars cannot block the coordinator for long.
 */
export const ROUND_RECOVERY_BUDGET = 2 * MAX_RECOVERY_CANDIDATES;

/**
 * The outcome of a round: the sum, or why it could not be computed. `misbehaving` lists the
 * participants whose unmask answers were malformed or lies (shares off the owner's polynomial):
 * their bad shares were left out, and with too few good ones left the round fails instead.
 */
export type SecAggResult = { ok: true; sum: Float32Array; included: number[]; misbehaving: number[] } | { ok: false; reason: string; misbehaving: number[] };

/** One round, coordinator side. */
export class SecAggCoordinator {
  private readonly graph: Map<number, number[]>;
  private readonly adverts = new Map<number, KeyAdvert>();
  private readonly sum: MaskSum;
  private readonly masked = new Set<number>();
  private readonly shared = new Set<number>();
  private readonly routed = new Set<string>();
  private frozen?: UnmaskRequest;

  constructor(
    private readonly params: SecAggParams,
    private readonly signKeys: ReadonlyMap<number, Uint8Array>,
  ) {
    validateParams(params, 'SecAggCoordinator');
    this.graph = neighbourGraph(params.ids, params.k, params.graphSeed);
    this.sum = new MaskSum(params.length);
  }

  /** Step 1: accept an advert if signed for this round by that device and not seen before. */
  acceptAdvert(a: KeyAdvert): boolean {
    const pk = this.signKeys.get(a.id);
    if (this.frozen || this.routed.size > 0 || !pk || this.adverts.has(a.id) || !this.graph.has(a.id) || !verifyAdvert(a, this.params.roundId, pk)) return false;
    this.adverts.set(a.id, a);
    return true;
  }

  /** The adverts every device needs for step 2. */
  advertsForDevices(): ReadonlyMap<number, KeyAdvert> {
    return this.adverts;
  }

  /** Step 2: route a device's share messages; returns them grouped by recipient. */
  routeShares(all: readonly ShareMessage[]): Map<number, ShareMessage[]> {
    if (this.frozen || this.routed.size > 0) throw new RangeError('SecAggCoordinator.routeShares: shares were already routed this round');
    const out = new Map<number, ShareMessage[]>();
    for (const m of all) {
      // only to a neighbour that advertised, once per pair: anything else no honest device sends
      if (!this.adverts.has(m.from) || !this.adverts.has(m.to) || !this.graph.get(m.from)!.includes(m.to) || this.routed.has(`${m.from}>${m.to}`)) continue;
      this.shared.add(m.from);
      this.routed.add(`${m.from}>${m.to}`);
      const list = out.get(m.to) ?? [];
      list.push(m);
      out.set(m.to, list);
    }
    return out;
  }

  /** The devices whose shares were routed (U₁): every device needs this list for step 3. */
  senders(): number[] {
    return [...this.shared].sort((a, b) => a - b);
  }

  /** Step 3: add a masked input (once per device that shared keys, before the unmask request). */
  acceptMaskedInput(id: number, y: Uint32Array): boolean {
    if (this.frozen || !this.shared.has(id) || this.masked.has(id) || !(y instanceof Uint32Array) || y.length !== this.params.length) return false;
    this.sum.add(y);
    this.masked.add(id);
    return true;
  }

  /**
   * Step 4 request: self-mask shares of devices whose input arrived, key shares of those that
   * dropped before. Issuing it freezes the round: later inputs are refused, so no device can
   * move from one list to the other.
   */
  unmaskRequest(): UnmaskRequest {
    this.frozen ??= { selfMaskOf: [...this.masked], keyOf: [...this.shared].filter((id) => !this.masked.has(id)) };
    return this.frozen;
  }

  /**
   * Finish with the survivors' responses (peer input: every share is checked). A share counts
   * only if it comes from a neighbour of its owner that was sent the owner's shares, carries
   * x = the responder's id and lies in the field, and answers what was asked (self-mask shares of
   * inputs that arrived, key shares of the dropped). Each secret is rebuilt with
   * {@link recoverSecret}: shares off the polynomial are left out and their holders named, and a
   * rebuilt key must match the owner's advertised public key, a rebuilt self-mask seed the owner's
   * commitment (when its advert carried one: then false shares are found even without a majority
   * of honest ones). A secret that cannot be rebuilt consistently fails the round (a value) — the
   * sum is never computed from a mask known to be wrong.
   */
  finish(responses: readonly UnmaskResponse[]): SecAggResult {
    const t = this.params.threshold;
    const req = this.unmaskRequest();
    const asked = { selfMask: new Set(req.selfMaskOf), key: new Set(req.keyOf) };
    // the work liars can cause in one round, beyond one try per honest secret (the event loop is blocked meanwhile)
    let budget = ROUND_RECOVERY_BUDGET;
    const misbehaving = new Set<number>();
    // one response per participant (a repeated response counts once)
    const byFrom = new Map<number, UnmaskResponse>();
    for (const r of responses) if (this.graph.has(r.from) && !byFrom.has(r.from)) byFrom.set(r.from, r);
    for (const r of byFrom.values()) {
      for (const kind of ['selfMask', 'key'] as const) {
        for (const [owner, share] of r[kind]) {
          const fair = asked[kind].has(owner) && this.routed.has(`${owner}>${r.from}`) && isValidShare(share) && share.x === r.from;
          if (!fair) misbehaving.add(r.from);
        }
      }
    }
    const collect = (owner: number, kind: 'selfMask' | 'key'): Share[] =>
      (this.graph.get(owner) ?? []).flatMap((v) => {
        const share = byFrom.get(v)?.[kind].get(owner);
        return share && isValidShare(share) && share.x === v && this.routed.has(`${owner}>${v}`) && !misbehaving.has(v) ? [share] : [];
      });
    const rebuild = (owner: number, kind: 'selfMask' | 'key', what: string): Uint8Array | string => {
      const shares = collect(owner, kind);
      if (shares.length < t) return `only ${shares.length} of the ${t} shares needed to ${what} arrived`;
      // a rebuilt key must give the advertised public key; a rebuilt seed its commitment (if one was sent)
      const advert = this.adverts.get(owner);
      const commitment = advert?.selfMaskCommitment;
      const verify =
        kind === 'key'
          ? (secret: Uint8Array) => advert !== undefined && Buffer.from(x25519(secret, X25519_BASE_POINT)).equals(advert.maskKey)
          : commitment
            ? (secret: Uint8Array) => Buffer.from(selfMaskCommitment(this.params.roundId, owner, secret)).equals(commitment)
            : undefined;
      if (budget < 1) return `cannot ${what}: false shares cost more than the round's ${ROUND_RECOVERY_BUDGET} reconstruction tries`;
      const r = recoverSecret(shares, t, 32, verify, Math.min(MAX_RECOVERY_CANDIDATES, budget));
      budget -= Math.max(0, r.tried - 1); // an honest secret costs one try, free
      if (!r.ok) return `cannot ${what}: ${r.reason}`;
      for (const liar of r.liars) misbehaving.add(liar);
      return r.secret;
    };
    const failed = (reason: string): SecAggResult => {
      const named = [...misbehaving].sort((a, b) => a - b);
      return { ok: false, reason: named.length ? `${reason} (participant(s) ${named.join(', ')} sent malformed or false shares)` : reason, misbehaving: named };
    };
    const total = this.sum.clone();
    for (const u of [...this.masked].sort((a, b) => a - b)) {
      const seed = rebuild(u, 'selfMask', `unmask device ${u}`);
      if (typeof seed === 'string') return failed(seed);
      total.addMask(seed, -1);
    }
    for (const v of [...req.keyOf].sort((a, b) => a - b)) {
      const secret = rebuild(v, 'key', `remove dropped device ${v}'s masks`);
      if (typeof secret === 'string') return failed(secret);
      const seedWith = pairwiseSeeder(secret);
      for (const u of this.graph.get(v) ?? []) {
        // u masked with v only if v's shares reached u
        if (!this.masked.has(u) || !this.routed.has(`${v}>${u}`)) continue;
        const s = seedWith(this.adverts.get(u)!.maskKey, `${this.params.roundId}|${Math.min(u, v)}|${Math.max(u, v)}`);
        // u added +PRG(s) if u < v, −PRG(s) otherwise: take it back out
        total.addMask(s, u < v ? -1 : 1);
      }
    }
    return { ok: true, sum: decodeFixed(total.toUint32Array(), this.params.scale), included: [...this.masked].sort((a, b) => a - b), misbehaving: [...misbehaving].sort((a, b) => a - b) };
  }
}
