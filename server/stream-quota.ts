/**
 * A cap on the long-lived calls one device may hold open at once (downloads, round watches,
 * uploads). Every such call holds server memory (a chunk in flight, an event queue, an update
 * buffer), so without a cap one device could open thousands and exhaust the coordinator.
 *
 * Two ways to hold the cap:
 * - {@link StreamQuota.tryAdmit} refuses the new call. For server streams (downloads, watches):
 *   an old stream whose reader stalled cannot be ended to free its memory (its status queues
 *   behind the data flow control holds back), so the new one must not start.
 * - {@link StreamQuota.admit} ends the OLDEST call instead. For client streams (uploads), whose
 *   memory the coordinator drops itself: a device whose old upload died silently is not locked
 *   out of retrying.
 */

interface Held {
  readonly end: () => void;
}

/** At most `limit` open calls per key (a device id). */
export class StreamQuota {
  private readonly open = new Map<string, Set<Held>>();

  /** @param limit calls one key may hold open at once (a positive integer). */
  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`StreamQuota: limit must be a positive integer, got ${limit}`);
  }

  /**
   * Admit a call held by `key`; `end` ends it (with a status) if it is later pushed out by newer
   * calls of the same key. Returns the release function to call once the call has ended for any
   * reason (idempotent).
   */
  admit(key: string, end: () => void): () => void {
    if (typeof key !== 'string' || typeof end !== 'function') throw new TypeError('StreamQuota.admit: key must be a string and end a function');
    let held = this.open.get(key);
    if (!held) {
      held = new Set();
      this.open.set(key, held);
    }
    const mine: Held = { end };
    held.add(mine);
    const release = (): void => {
      const set = this.open.get(key);
      if (!set?.delete(mine)) return;
      if (set.size === 0) this.open.delete(key);
    };
    while (held.size > this.limit) {
      // a Set iterates in insertion order: the first is the oldest
      const oldest = held.values().next().value as Held;
      held.delete(oldest);
      oldest.end();
    }
    return release;
  }

  /** Admit a call held by `key` if it holds fewer than `limit`: its release function, or undefined (refuse the call). */
  tryAdmit(key: string): (() => void) | undefined {
    if (this.count(key) >= this.limit) return undefined;
    return this.admit(key, () => {});
  }

  /** Calls `key` holds open now. */
  count(key: string): number {
    return this.open.get(key)?.size ?? 0;
  }
}
