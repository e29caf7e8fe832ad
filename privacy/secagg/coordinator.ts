/**
 * The coordinator's side of a SecAgg+ round: checks adverts, routes encrypted shares, sums
 * masked inputs, and at the end removes the masks it may remove (see protocol.ts).
 */
import { addMod32, decodeFixed, expandMask, pairwiseSeed } from './masking.js';
import { neighbourGraph, validateParams, verifyAdvert, type KeyAdvert, type SecAggParams, type ShareMessage, type UnmaskRequest, type UnmaskResponse } from './protocol.js';
import { combineShares, type Share } from './shamir.js';

/** The outcome of a round: the sum, or why it could not be computed. */
export type SecAggResult = { ok: true; sum: Float32Array; included: number[] } | { ok: false; reason: string };

/** One round, coordinator side. */
export class SecAggCoordinator {
  private readonly graph: Map<number, number[]>;
  private readonly adverts = new Map<number, KeyAdvert>();
  private readonly sum: Uint32Array;
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
    this.sum = new Uint32Array(params.length);
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
      if (!this.adverts.has(m.from) || !this.adverts.has(m.to)) continue;
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
    if (this.frozen || !this.shared.has(id) || this.masked.has(id) || y.length !== this.params.length) return false;
    addMod32(this.sum, y);
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

  /** Finish with the survivors' responses. */
  finish(responses: readonly UnmaskResponse[]): SecAggResult {
    const t = this.params.threshold;
    // the owner's neighbours' responses (one per device; a repeated response counts once)
    const byFrom = new Map<number, UnmaskResponse>();
    for (const r of responses) if (!byFrom.has(r.from)) byFrom.set(r.from, r);
    const collect = (owner: number, kind: 'selfMask' | 'key'): Share[] =>
      (this.graph.get(owner) ?? []).flatMap((v) => {
        const share = byFrom.get(v)?.[kind].get(owner);
        return share ? [share] : [];
      });
    const total = Uint32Array.from(this.sum);
    for (const u of this.masked) {
      const shares = collect(u, 'selfMask');
      if (shares.length < t) return { ok: false, reason: `only ${shares.length} of the ${t} shares needed to unmask device ${u} arrived` };
      addMod32(total, expandMask(combineShares(shares.slice(0, t), 32), this.params.length), -1);
    }
    const req = this.unmaskRequest();
    for (const v of req.keyOf) {
      const shares = collect(v, 'key');
      if (shares.length < t) return { ok: false, reason: `only ${shares.length} of the ${t} shares needed to remove dropped device ${v}'s masks arrived` };
      const secret = combineShares(shares.slice(0, t), 32);
      for (const u of this.graph.get(v) ?? []) {
        // u masked with v only if v's shares reached u
        if (!this.masked.has(u) || !this.routed.has(`${v}>${u}`)) continue;
        const a = this.adverts.get(u)!;
        const s = pairwiseSeed(secret, a.maskKey, `${this.params.roundId}|${Math.min(u, v)}|${Math.max(u, v)}`);
        // u added +PRG(s) if u < v, −PRG(s) otherwise: take it back out
        addMod32(total, expandMask(s, this.params.length), u < v ? -1 : 1);
      }
    }
    return { ok: true, sum: decodeFixed(total, this.params.scale), included: [...this.masked].sort((a, b) => a - b) };
  }
}
