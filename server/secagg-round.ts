/**
 * One secure-aggregation round on the coordinator, driving privacy/secagg's SecAggCoordinator
 * through phases that devices poll over the SecAgg RPC:
 *
 *   SELECTING ─(cohort full | selection timeout)─▶ ADVERTISING ─(all | timeout)─▶ SHARING
 *   ─(all | timeout)─▶ MASKING ─(all | timeout)─▶ UNMASKING ─(all | timeout)─▶ sum | failure
 *
 * The coordinator learns only the sum of the survivors' clipped (and noised) updates: each
 * device's masked input is uniformly random to it. Too few participants at any phase, or too few
 * shares to remove a mask, fails the round cleanly (a value, not an exception).
 *
 * Every participant's bytes are hostile until checked: a stage request that breaks the protocol's
 * shape (wrong ids, recipients that are not its neighbours, duplicates, owners it was not asked
 * about) is refused with INVALID_ARGUMENT and not recorded; lies that only the unmasking can see
 * (false share values) are found there, left out and logged (see SecAggCoordinator.finish). An
 * exception in a phase step — in an RPC or in the phase timer — fails the round with a reason
 * and is logged; it never reaches a caller or the process.
 */
import { fixedPointScale, neighbourGraph, SecAggCoordinator, validateParams, type KeyAdvert, type SecAggParams, type ShareMessage, type UnmaskRequest, type UnmaskResponse } from '../privacy/secagg/index.js';
import { refuse } from './errors.js';

/** Phases of a SecAgg round. */
export type SecAggPhase = 'selecting' | 'advertising' | 'sharing' | 'masking' | 'unmasking' | 'done';

/** Settings of a program's secure aggregation. */
export interface SecAggSettings {
  /** Neighbours per device; default: the smallest even k that survives 30% dropout (see secAggShape). */
  readonly neighbours?: number;
  /** Longest wait of each phase, ms. */
  readonly phaseTimeoutMs: number;
}

/** The round's outcome, reported once. */
export type SecAggOutcome = { ok: true; sum: Float32Array; survivors: string[]; bytesUp: number } | { ok: false; reason: string };

/** Structured log line sink (the coordinator's). */
export type SecAggLog = (msg: string, fields?: Record<string, unknown>) => void;

/** Largest sealed share message a participant may route (nonce + box overhead + the JSON pair). */
const MAX_SEALED_BYTES = 1024;

/** P(X < t) for X ~ Binomial(k, p), summed in log space. */
function binomialBelow(k: number, p: number, t: number): number {
  let total = 0;
  let logC = 0; // log C(k, 0)
  for (let x = 0; x < t; x++) {
    if (x > 0) logC += Math.log(k - x + 1) - Math.log(x);
    total += Math.exp(logC + x * Math.log(p) + (k - x) * Math.log1p(-p));
  }
  return total;
}

/**
 * Neighbour count k and threshold t = ⌊k/2⌋ + 1 for n participants (SecAgg+: k/2 < t ≤ k): the
 * smallest even k for which, if each device drops with probability `dropout` (default 0.3), the
 * chance that any device keeps fewer than t live neighbours is at most 1% (union bound) — so a
 * round survives that dropout. At most n − 1 (then every pair is a neighbour).
 */
export function secAggShape(n: number, neighbours?: number, dropout = 0.3): { k: number; t: number } {
  if (n < 3) return { k: 0, t: 0 };
  const top = (n - 1) % 2 === 0 ? n - 1 : n - 2;
  let k = neighbours;
  if (k === undefined) {
    k = top;
    for (let c = 2; c <= top; c += 2) {
      if (n * binomialBelow(c, 1 - dropout, Math.floor(c / 2) + 1) <= 0.01) {
        k = c;
        break;
      }
    }
  }
  k = Math.max(2, Math.min(k, top));
  return { k, t: Math.floor(k / 2) + 1 };
}

/** Coordinator side of one SecAgg round. */
export class SecAggRound {
  phase: SecAggPhase = 'selecting';
  /** deviceId → participant id. */
  readonly ids = new Map<string, number>();
  private params?: SecAggParams;
  private coord?: SecAggCoordinator;
  private signKeys = new Map<number, Uint8Array>();
  private readonly shares: ShareMessage[] = [];
  private readonly sharedFrom = new Set<number>();
  private routed?: Map<number, ShareMessage[]>;
  private readonly maskedFrom = new Set<number>();
  private readonly responses = new Map<number, UnmaskResponse>();
  private request?: UnmaskRequest;
  private timer?: NodeJS.Timeout;
  private bytesUp = 0;
  private finished = false;
  private neighbours?: Map<number, number[]>;

  constructor(
    readonly roundId: string,
    private readonly wanted: number,
    private readonly minimum: number,
    private readonly length: number,
    private readonly bound: number,
    private readonly settings: SecAggSettings,
    private readonly signKeyOf: (deviceId: string) => Uint8Array,
    private readonly onOutcome: (o: SecAggOutcome) => void,
    private readonly log?: SecAggLog,
  ) {
    this.arm();
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.advance(true), this.settings.phaseTimeoutMs);
  }

  /** Report the outcome once; an exception in the receiver is logged, never thrown back into a phase step. */
  private report(o: SecAggOutcome): void {
    try {
      this.onOutcome(o);
    } catch (e) {
      this.log?.('secure aggregation outcome handler failed', { roundId: this.roundId, ok: o.ok, error: errorText(e) });
    }
  }

  /** Stop timers (coordinator shutdown). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.finished = true;
  }

  private fail(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.phase = 'done';
    this.log?.('secure aggregation failed', { roundId: this.roundId, reason });
    this.report({ ok: false, reason });
  }

  /** End the selection now with the devices selected so far (they all checked in: a simulation's sampled cohort). */
  closeSelection(): void {
    if (this.phase === 'selecting') this.advance(true);
  }

  /** Add a selected device; returns its participant id. Only while selecting. */
  select(deviceId: string): number {
    const known = this.ids.get(deviceId);
    if (known) return known;
    if (this.phase !== 'selecting') refuse('failed-precondition', `secure aggregation for round ${this.roundId} has closed its selection`);
    const id = this.ids.size + 1;
    this.ids.set(deviceId, id);
    if (this.ids.size >= this.wanted) this.advance(false);
    return id;
  }

  private idOf(deviceId: string): number {
    const id = this.ids.get(deviceId);
    if (!id) refuse('failed-precondition', `device ${deviceId} is not a participant of round ${this.roundId}'s secure aggregation`);
    return id;
  }

  /**
   * Move to the next phase when its condition holds (or its time is up). Runs in RPC handlers and
   * in the phase timer: whatever goes wrong in a step fails the round here (logged), so no
   * exception reaches a device's call or escapes a timer callback.
   */
  private advance(timedOut: boolean): void {
    if (this.finished) return;
    try {
      this.step(timedOut);
    } catch (e) {
      this.log?.('secure aggregation step threw', { roundId: this.roundId, phase: this.phase, error: errorText(e), stack: e instanceof Error ? e.stack : undefined });
      this.fail(`secure aggregation failed in phase ${this.phase}: ${errorText(e)}`);
    }
  }

  private step(timedOut: boolean): void {
    if (this.finished) return;
    const n = this.ids.size;
    switch (this.phase) {
      case 'selecting': {
        if (n < Math.max(3, this.minimum)) return this.fail(`secure aggregation needs at least ${Math.max(3, this.minimum)} participants; ${n} checked in before selection closed`);
        const { k, t } = secAggShape(n, this.settings.neighbours);
        const ids = [...this.ids.values()];
        this.params = validateParams({ roundId: this.roundId, ids, k, threshold: t, length: this.length, scale: fixedPointScale(this.bound, n), graphSeed: Number.parseInt(this.roundId.replace(/\D/g, '').slice(-9) || '1', 10) });
        this.signKeys = new Map([...this.ids].map(([dev, id]) => [id, this.signKeyOf(dev)]));
        this.coord = new SecAggCoordinator(this.params, this.signKeys);
        this.phase = 'advertising';
        break;
      }
      case 'advertising': {
        const have = this.coord!.advertsForDevices().size;
        if (!timedOut && have < n) return;
        if (have < this.minimum) return this.fail(`only ${have} device(s) advertised keys, fewer than the minimum ${this.minimum}`);
        this.phase = 'sharing';
        break;
      }
      case 'sharing': {
        const advertised = this.coord!.advertsForDevices().size;
        if (!timedOut && this.sharedFrom.size < advertised) return;
        this.routed = this.coord!.routeShares(this.shares);
        if (this.coord!.senders().length < this.minimum) return this.fail(`only ${this.coord!.senders().length} device(s) shared keys, fewer than the minimum ${this.minimum}`);
        this.phase = 'masking';
        break;
      }
      case 'masking': {
        if (!timedOut && this.maskedFrom.size < this.coord!.senders().length) return;
        if (this.maskedFrom.size < this.minimum) return this.fail(`only ${this.maskedFrom.size} masked input(s) arrived, fewer than the minimum ${this.minimum}`);
        this.request = this.coord!.unmaskRequest();
        this.phase = 'unmasking';
        break;
      }
      case 'unmasking': {
        if (!timedOut && this.responses.size < this.maskedFrom.size) return;
        const r = this.coord!.finish([...this.responses.values()]);
        const byId = new Map([...this.ids].map(([dev, id]) => [id, dev]));
        if (r.misbehaving.length > 0) this.log?.('secure aggregation: false or malformed shares left out', { roundId: this.roundId, participants: r.misbehaving, devices: r.misbehaving.map((id) => byId.get(id)) });
        if (!r.ok) return this.fail(`secure aggregation could not unmask the sum: ${r.reason}`);
        this.finished = true;
        if (this.timer) clearTimeout(this.timer);
        this.phase = 'done';
        return this.report({ ok: true, sum: r.sum, survivors: r.included.map((id) => byId.get(id)!), bytesUp: this.bytesUp });
      }
      default:
        return;
    }
    this.arm();
    this.advance(false); // the next phase may already be satisfied
  }

  private waitIn(phase: SecAggPhase): boolean {
    const order: SecAggPhase[] = ['selecting', 'advertising', 'sharing', 'masking', 'unmasking', 'done'];
    return order.indexOf(this.phase) < order.indexOf(phase);
  }

  /** The round's parameters, or null while selecting. */
  paramsFor(deviceId: string): { params: SecAggParams; myId: number } | null {
    const myId = this.idOf(deviceId);
    return this.params ? { params: this.params, myId } : null;
  }

  /** Step 1. */
  advertise(deviceId: string, a: KeyAdvert, bytes: number): void {
    const id = this.idOf(deviceId);
    if (this.phase !== 'advertising') refuse('failed-precondition', `round ${this.roundId} is not taking key adverts now (phase ${this.phase})`);
    if (a.id !== id) refuse('invalid-argument', `the advert is for participant ${a.id}, but this device is ${id}`);
    if (!this.coord!.acceptAdvert(a)) refuse('invalid-argument', 'the key advert is not signed by this device for this round, or was already sent');
    this.bytesUp += bytes;
    this.advance(false);
  }

  /** The adverts, once they are closed (null before). */
  adverts(deviceId: string): { adverts: KeyAdvert[]; signKeys: Map<number, Uint8Array> } | null {
    this.idOf(deviceId);
    if (this.waitIn('sharing')) return null;
    return { adverts: [...this.coord!.advertsForDevices().values()], signKeys: this.signKeys };
  }

  /** Step 2. */
  shareKeys(deviceId: string, messages: readonly ShareMessage[], bytes: number): void {
    const id = this.idOf(deviceId);
    if (this.phase !== 'sharing') refuse('failed-precondition', `round ${this.roundId} is not taking key shares now (phase ${this.phase})`);
    if (this.sharedFrom.has(id)) refuse('already-exists', `participant ${id} already sent its shares`);
    if (!this.coord!.advertsForDevices().has(id)) refuse('failed-precondition', `participant ${id} did not advertise keys in time`);
    if (messages.some((m) => m.from !== id)) refuse('invalid-argument', `shares must come from participant ${id}`);
    // exactly one message to each neighbour that advertised (the same set the device verified):
    // a neighbour left out would abort its round, a stranger could not use it
    const due = this.graph()!.get(id)!.filter((v) => this.coord!.advertsForDevices().has(v));
    const to = messages.map((m) => m.to);
    if (new Set(to).size !== to.length) refuse('invalid-argument', `participant ${id} sent two share messages to one neighbour`);
    const stray = to.find((v) => !due.includes(v));
    if (stray !== undefined) refuse('invalid-argument', `participant ${id} sent a share message to ${stray}, which is not one of its neighbours that advertised keys (${due.join(', ')})`);
    if (to.length !== due.length) refuse('invalid-argument', `participant ${id} must send one share message to each of its neighbours that advertised keys (${due.join(', ')}); it sent ${to.length}`);
    if (messages.some((m) => m.sealed.length > MAX_SEALED_BYTES)) refuse('invalid-argument', `a sealed share message is larger than ${MAX_SEALED_BYTES} bytes`);
    this.shares.push(...messages);
    this.sharedFrom.add(id);
    this.bytesUp += bytes;
    this.advance(false);
  }

  /** The shares for this device and the senders (U₁), once sharing closed (null before). */
  sharesFor(deviceId: string): { shares: ShareMessage[]; senders: number[] } | null {
    const id = this.idOf(deviceId);
    if (this.waitIn('masking')) return null;
    return { shares: this.routed?.get(id) ?? [], senders: this.coord!.senders() };
  }

  /** Step 3 (through UploadUpdate). */
  maskedInput(deviceId: string, y: Uint32Array, bytes: number): void {
    const id = this.idOf(deviceId);
    if (this.phase !== 'masking') refuse('failed-precondition', `round ${this.roundId} is not taking masked inputs now (phase ${this.phase})`);
    if (!this.coord!.acceptMaskedInput(id, y)) refuse('invalid-argument', `participant ${id}'s masked input was refused (not a key sharer, sent twice, or the wrong length)`);
    this.maskedFrom.add(id);
    this.bytesUp += bytes;
    this.advance(false);
  }

  /** The unmask request, once masking closed (null before). */
  unmaskRequest(deviceId: string): UnmaskRequest | null {
    this.idOf(deviceId);
    if (this.waitIn('unmasking')) return null;
    return this.request ?? null;
  }

  /** Step 4. */
  unmask(deviceId: string, r: UnmaskResponse, bytes: number): void {
    const id = this.idOf(deviceId);
    if (this.phase !== 'unmasking') refuse('failed-precondition', `round ${this.roundId} is not unmasking now (phase ${this.phase})`);
    if (r.from !== id) refuse('invalid-argument', `the response is from participant ${r.from}, but this device is ${id}`);
    if (!this.maskedFrom.has(id)) refuse('failed-precondition', `participant ${id} sent no masked input, so it is not asked to unmask`);
    if (this.responses.has(id)) refuse('already-exists', `participant ${id} already answered the unmask request`);
    // answer only what was asked, and only about owners whose shares this participant holds
    const req = this.request!;
    const neighbours = this.graph()!.get(id)!;
    for (const [kind, asked, given] of [['self-mask', req.selfMaskOf, r.selfMask], ['key', req.keyOf, r.key]] as const) {
      if (given.size > neighbours.length) refuse('invalid-argument', `participant ${id} sent ${given.size} ${kind} shares; it has ${neighbours.length} neighbours`);
      for (const [owner, share] of given) {
        if (!asked.includes(owner)) refuse('invalid-argument', `participant ${id} sent a ${kind} share of ${owner}, which was not asked for`);
        if (!neighbours.includes(owner)) refuse('invalid-argument', `participant ${id} sent a ${kind} share of ${owner}, which is not its neighbour`);
        if (share.x !== id) refuse('invalid-argument', `participant ${id} sent a ${kind} share with x = ${share.x}`);
      }
    }
    this.responses.set(id, r);
    this.bytesUp += bytes;
    this.advance(false);
  }

  /** Participants in the round's graph (for tests and logs). */
  graph(): Map<number, number[]> | undefined {
    if (!this.params) return undefined;
    this.neighbours ??= neighbourGraph(this.params.ids, this.params.k, this.params.graphSeed);
    return this.neighbours;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
