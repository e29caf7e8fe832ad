/**
 * Throttling of wrong enrolment tokens: failures are counted in a sliding window per peer (an
 * IPv4 address or an IPv6 /64 network, see {@link peerKey}) and over all peers. Once a peer (or
 * everyone together) reaches its limit, enrolments from it (or from anyone) wait until the
 * oldest failure leaves the window — even with the right token, so guessing learns nothing
 * while throttled.
 */
import { isIPv6 } from 'node:net';

/** Limits of an {@link EnrolThrottle}. */
export interface EnrolThrottleOptions {
  /** Wrong tokens one peer (IPv4 address, IPv6 /64) may send per window. Default 10. */
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

/**
 * The key wrong enrolment tokens are counted under for a gRPC peer string: its IPv4 address, or
 * for IPv6 its /64 network ("2001:db8:0:1::/64"). One host usually holds a whole /64 and may
 * rotate through its addresses at will: keyed by address, it would get a fresh allowance per
 * address and could push the global limit over (holding every enrolment back) on its own.
 */
export function peerKey(peer: string): string {
  const host = peerHost(peer);
  const groups = ipv6Groups(host);
  if (!groups) return host;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (zone index ignored), or undefined for anything else. */
function ipv6Groups(address: string): number[] | undefined {
  let a = address.replace(/%.*$/, '');
  if (!isIPv6(a)) return undefined;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [o1, o2, o3, o4] = v4.slice(1).map(Number);
    a = `${a.slice(0, v4.index)}${((o1 << 8) | o2).toString(16)}:${((o3 << 8) | o4).toString(16)}`;
  }
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}

/** The host part of a gRPC peer string ("ipv4:1.2.3.4:5", "[::1]:5", "::ffff:1.2.3.4:5" → the address). */
export function peerHost(peer: string): string {
  let h = peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '');
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
}
