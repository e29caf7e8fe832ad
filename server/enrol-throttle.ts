/**
 * Throttling of wrong enrolment tokens: failures are counted in a sliding window per peer
 * address and over all peers. Once a peer (or everyone together) reaches its limit, enrolments
 * from it (or from anyone) wait until the oldest failure leaves the window — even with the right
 * token, so guessing learns nothing while throttled.
 */

/** Limits of an {@link EnrolThrottle}. */
export interface EnrolThrottleOptions {
  /** Wrong tokens one peer address may send per window. Default 10. */
  readonly perPeer?: number;
  /** Wrong tokens all peers together may send per window. Default 200. */
  readonly global?: number;
  /** The window, ms. Default 60 000. */
  readonly windowMs?: number;
}

const MAX_PEERS = 100_000;

/** Sliding-window counters of wrong enrolment tokens. */
export class EnrolThrottle {
  private readonly perPeer: number;
  private readonly global: number;
  private readonly windowMs: number;
  private readonly byPeer = new Map<string, number[]>();
  private readonly all: number[] = [];

  constructor(o: EnrolThrottleOptions = {}) {
    this.perPeer = o.perPeer ?? 10;
    this.global = o.global ?? 200;
    this.windowMs = o.windowMs ?? 60_000;
    for (const [k, v] of [['perPeer', this.perPeer], ['global', this.global], ['windowMs', this.windowMs]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`EnrolThrottle: ${k} must be a positive integer, got ${v}`);
    }
  }

  private trim(times: number[], now: number): void {
    while (times.length && times[0] <= now - this.windowMs) times.shift();
  }

  /** How long `peer` must wait before its next enrolment, ms (0 = go ahead). */
  waitMs(peer: string, now = Date.now()): number {
    this.trim(this.all, now);
    const mine = this.byPeer.get(peer);
    if (mine) {
      this.trim(mine, now);
      if (!mine.length) this.byPeer.delete(peer);
    }
    let wait = 0;
    if (mine && mine.length >= this.perPeer) wait = mine[mine.length - this.perPeer] + this.windowMs - now;
    if (this.all.length >= this.global) wait = Math.max(wait, this.all[this.all.length - this.global] + this.windowMs - now);
    return Math.max(0, wait);
  }

  /** Count a wrong token (or unknown program) from `peer`. */
  fail(peer: string, now = Date.now()): void {
    if (!this.byPeer.has(peer) && this.byPeer.size >= MAX_PEERS) {
      for (const [k, v] of this.byPeer) {
        this.trim(v, now);
        if (!v.length) this.byPeer.delete(k);
      }
    }
    const mine = this.byPeer.get(peer) ?? [];
    mine.push(now);
    if (mine.length > this.perPeer) mine.shift();
    this.byPeer.set(peer, mine);
    this.all.push(now);
    if (this.all.length > this.global) this.all.shift();
  }
}

/** The host part of a gRPC peer string ("ipv4:1.2.3.4:5", "[::1]:5", "::ffff:1.2.3.4:5" → the address). */
export function peerHost(peer: string): string {
  let h = peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '');
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}
