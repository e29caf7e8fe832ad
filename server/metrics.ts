/**
 * Prometheus metrics of a coordinator (prom-client, its own registry): per program, rounds
 * completed and failed, round durations, updates accepted and rejected (by gRPC status), bytes
 * up and down, devices enrolled and active, ε spent and remaining, the clip norm, the adapter
 * version and the latest held-out loss; per RPC, calls by status; and the process (event-loop
 * lag, heap, RSS, … — prom-client's default metrics, prefixed `fedtune_`).
 *
 * Round metrics are driven by each program's rxjs round events, request metrics by a gRPC server
 * interceptor; gauges of state (ε, C, devices) are read from memory when Prometheus scrapes —
 * devices enrolled is one COUNT per program per scrape — so nothing polls the database on the
 * path of a device's request. Only configured program ids become label values (a request naming
 * any other program is counted under program=""), so callers cannot grow the label set.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { rawRequestBytes } from '../proto/raw-request.js';
import type { Coordinator } from './coordinator.js';
import type { RoundEventRecord } from './round-events.js';

/** Options of {@link CoordinatorMetrics}. */
export interface MetricsOptions {
  /** A device counts as active this long after its last successful CheckIn, ms. Default 600000. */
  readonly activeWindowMs?: number;
  /** Collect prom-client's process metrics (event-loop lag, heap, RSS, …). Default true. */
  readonly processMetrics?: boolean;
}

const STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

/** The gRPC status name of a code (e.g. 3 → "INVALID_ARGUMENT"). */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `CODE_${code}`;
}

type Msg = { programId?: unknown; header?: { programId?: unknown; auth?: { deviceId?: unknown } | null } | null; auth?: { deviceId?: unknown } | null; data?: unknown };

/** A coordinator's metrics registry, fed by {@link observe} and {@link interceptor}. */
export class CoordinatorMetrics {
  /** The registry `/metrics` serves (not prom-client's global one). */
  readonly registry = new Registry();
  private readonly activeWindowMs: number;
  private coordinator?: Coordinator;
  private programs = new Set<string>();
  private readonly subscriptions: Subscription[] = [];
  private readonly opened = new Map<string, number>();
  /** Last successful CheckIn per device, per program. */
  private readonly lastSeen = new Map<string, Map<string, number>>();
  /** Program of a device id (authenticated devices only: filled from the store once per device). */
  private readonly deviceProgram = new Map<string, string>();

  private readonly roundsCompleted: Counter<'program'>;
  private readonly roundsFailed: Counter<'program'>;
  private readonly roundDuration: Histogram<'program' | 'outcome'>;
  private readonly updatesAccepted: Counter<'program'>;
  private readonly updatesRejected: Counter<'program' | 'reason'>;
  private readonly bytesReceived: Counter<'program'>;
  private readonly bytesSent: Counter<'program'>;
  private readonly heldoutLoss: Gauge<'program'>;
  private readonly baseTextLoss: Gauge<'program'>;
  private readonly requests: Counter<'method' | 'code'>;

  constructor(options: MetricsOptions = {}) {
    this.activeWindowMs = options.activeWindowMs ?? 600_000;
    if (!(this.activeWindowMs > 0)) throw new RangeError(`CoordinatorMetrics: options.activeWindowMs must be positive, got ${this.activeWindowMs}`);
    const registers = [this.registry];
    const perProgram = ['program'] as const;
    this.roundsCompleted = new Counter({ name: 'fedtune_rounds_completed_total', help: 'Rounds that completed and published a new adapter version.', labelNames: perProgram, registers });
    this.roundsFailed = new Counter({ name: 'fedtune_rounds_failed_total', help: 'Rounds that failed (too few updates, aggregation refused, budget exhausted, rollback).', labelNames: perProgram, registers });
    this.roundDuration = new Histogram({
      name: 'fedtune_round_duration_seconds',
      help: 'From a round opening to its completion or failure.',
      labelNames: ['program', 'outcome'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    });
    this.updatesAccepted = new Counter({ name: 'fedtune_updates_accepted_total', help: 'Device updates accepted into a round.', labelNames: perProgram, registers });
    this.updatesRejected = new Counter({ name: 'fedtune_updates_rejected_total', help: 'Device updates refused, by the gRPC status of the refusal (reason).', labelNames: ['program', 'reason'], registers });
    this.bytesReceived = new Counter({ name: 'fedtune_received_bytes_total', help: 'Request bytes received from devices (protobuf messages as they arrived).', labelNames: perProgram, registers });
    this.bytesSent = new Counter({ name: 'fedtune_sent_bytes_total', help: 'Response bytes sent to devices (blob chunk payloads; other messages serialized).', labelNames: perProgram, registers });
    this.heldoutLoss = new Gauge({ name: 'fedtune_heldout_loss', help: 'Server-side evaluation: the latest adapter\'s mean loss on the held-out data, nats/token.', labelNames: perProgram, registers });
    this.baseTextLoss = new Gauge({ name: 'fedtune_base_text_loss', help: 'Server-side evaluation: the latest adapter\'s mean loss on the base-domain text (forgetting), nats/token.', labelNames: perProgram, registers });
    this.requests = new Counter({ name: 'fedtune_grpc_requests_total', help: 'gRPC calls answered, by method and status.', labelNames: ['method', 'code'], registers });
    const stateGauge = (name: string, help: string, value: (c: Coordinator, id: string) => number | Promise<number>): void => {
      const g: Gauge<'program'> = new Gauge({
        name,
        help,
        labelNames: perProgram,
        registers,
        collect: async () => {
          const c = this.coordinator;
          if (!c) return;
          for (const id of this.programs) {
            try {
              g.set({ program: id }, await value(c, id));
            } catch {
              // the coordinator has closed (a scrape during shutdown): keep the last value
            }
          }
        },
      });
    };
    stateGauge('fedtune_devices_enrolled', 'Devices enrolled in the program.', (c, id) => c.store.deviceCount(id));
    stateGauge('fedtune_devices_active', 'Devices with a successful CheckIn within the active window (default 10 minutes).', (_c, id) => this.activeDevices(id));
    stateGauge('fedtune_epsilon_spent', 'Privacy spent so far (ε at the program\'s δ; 0 without DP).', (c, id) => c.program(id).runner.epsilonSpent());
    stateGauge('fedtune_epsilon_remaining', 'Privacy budget left (ε; +Inf without a budget).', (c, id) => {
      const p = c.program(id);
      return Math.max(0, p.spec.dp.epsilonBudget - p.runner.epsilonSpent());
    });
    stateGauge('fedtune_clip_norm', 'The clip bound C of the current round (adaptive clipping moves it; 0 = none).', (c, id) => c.program(id).runner.clipNorm());
    stateGauge('fedtune_adapter_version', 'The adapter version rounds train from.', (c, id) => c.program(id).runner.latestVersion.version);
    stateGauge('fedtune_program_done', '1 once the program has completed its rounds or exhausted its budget.', (c, id) => (c.program(id).runner.done ? 1 : 0));
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'fedtune_' });
  }

  /** Follow `c`'s programs (their round events); returns a function that stops following. */
  observe(c: Coordinator): () => void {
    if (!c || typeof c.programIds !== 'function') throw new TypeError('CoordinatorMetrics.observe: c must be a Coordinator');
    this.coordinator = c;
    this.programs = new Set(c.programIds());
    for (const id of this.programs) {
      // every series exists from the start, at 0
      this.roundsCompleted.inc({ program: id }, 0);
      this.roundsFailed.inc({ program: id }, 0);
      this.updatesAccepted.inc({ program: id }, 0);
      this.bytesReceived.inc({ program: id }, 0);
      this.bytesSent.inc({ program: id }, 0);
      const runner = c.program(id).runner;
      const last = runner.latestEvaluation();
      if (last) this.setLoss(id, last.heldoutLoss, last.baseTextLoss);
      this.subscriptions.push(runner.events$.subscribe((e) => this.onRound(e)));
    }
    return () => {
      for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    };
  }

  private setLoss(program: string, heldout: number, baseText?: number): void {
    this.heldoutLoss.set({ program }, heldout);
    if (baseText !== undefined) this.baseTextLoss.set({ program }, baseText);
  }

  private onRound(e: RoundEventRecord): void {
    const program = e.programId;
    if (e.state === 'OPEN') {
      this.opened.set(e.roundId, e.timeUnixMs);
      return;
    }
    if (e.state !== 'COMPLETED' && e.state !== 'FAILED') return;
    const outcome = e.state === 'COMPLETED' ? 'completed' : 'failed';
    (e.state === 'COMPLETED' ? this.roundsCompleted : this.roundsFailed).inc({ program });
    const opened = this.opened.get(e.roundId);
    this.opened.delete(e.roundId);
    if (opened !== undefined) this.roundDuration.observe({ program, outcome }, Math.max(0, e.timeUnixMs - opened) / 1000);
    if (e.heldoutLoss !== undefined) this.setLoss(program, e.heldoutLoss, e.baseTextLoss);
  }

  private activeDevices(program: string, now = Date.now()): number {
    const seen = this.lastSeen.get(program);
    if (!seen) return 0;
    for (const [d, t] of seen) if (now - t > this.activeWindowMs) seen.delete(d);
    return seen.size;
  }

  /** A configured program id, else '' (request fields are untrusted label values). */
  private known(p: unknown): string | undefined {
    return typeof p === 'string' && this.programs.has(p) ? p : undefined;
  }

  private programOfDevice(deviceId: unknown): string | undefined {
    if (typeof deviceId !== 'string' || deviceId === '') return undefined;
    const cached = this.deviceProgram.get(deviceId);
    if (cached) return cached;
    let p: string | undefined;
    try {
      // devices this process authenticated are known at once; others are looked up for their next call
      p = this.coordinator?.knownDevice(deviceId)?.programId;
      if (!p)
        this.coordinator?.store.device(deviceId).then(
          (d) => d && this.deviceProgram.set(deviceId, d.programId),
          () => undefined,
        );
    } catch {
      return undefined;
    }
    if (p) this.deviceProgram.set(deviceId, p);
    return this.known(p);
  }

  /**
   * The gRPC server interceptor that counts calls, bytes and updates (pass it in the server's
   * `interceptors` option; startCoordinator does when given `metrics`).
   */
  interceptor(): grpc.ServerInterceptor {
    return (method, call) => {
      const path = method.path;
      const slash = path.lastIndexOf('/');
      const rpc = path.slice(slash + 1);
      const coordinatorCall = path.slice(1, slash) === 'fedtune.v1.Coordinator';
      let program: string | undefined;
      let deviceId: unknown;
      let pendingUp = 0;
      let pendingDown = 0;
      const flush = (): void => {
        if (program === undefined) return;
        if (pendingUp) this.bytesReceived.inc({ program }, pendingUp);
        if (pendingDown) this.bytesSent.inc({ program }, pendingDown);
        pendingUp = pendingDown = 0;
      };
      return new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMessage: (message: Msg, nextMessage) => {
              if (coordinatorCall && message && typeof message === 'object') {
                pendingUp += rawRequestBytes(message)?.length ?? 0;
                if (program === undefined) {
                  deviceId ??= message.auth?.deviceId ?? message.header?.auth?.deviceId;
                  program = this.known(message.programId) ?? this.known(message.header?.programId) ?? (rpc === 'DownloadBlob' ? this.programOfDevice(message.auth?.deviceId) : undefined);
                }
                flush();
              }
              nextMessage(message);
            },
          }),
        sendMessage: (message: Msg, next) => {
          if (coordinatorCall && message && typeof message === 'object') {
            const data = message.data;
            pendingDown += data instanceof Uint8Array ? data.length : method.responseSerialize(message).length;
            flush();
          }
          next(message);
        },
        sendStatus: (status, next) => {
          try {
            const code = status.code ?? grpc.status.OK;
            this.requests.inc({ method: rpc, code: statusName(code) });
            if (coordinatorCall) {
              const p = program ?? '';
              if (rpc === 'UploadUpdate') {
                if (code === grpc.status.OK) this.updatesAccepted.inc({ program: p });
                else this.updatesRejected.inc({ program: p, reason: statusName(code) });
              } else if (rpc === 'CheckIn' && code === grpc.status.OK && program !== undefined && typeof deviceId === 'string') {
                const seen = this.lastSeen.get(program) ?? new Map<string, number>();
                this.lastSeen.set(program, seen);
                seen.set(deviceId, Date.now());
              }
            }
          } catch {
            // metrics never fail a call
          }
          next(status);
        },
      });
    };
  }

  /** The registry in Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/** Serve `metrics` over HTTP: GET /metrics (Prometheus text format); everything else 404. */
export async function serveMetrics(metrics: CoordinatorMetrics, options: { readonly host?: string; readonly port?: number } = {}): Promise<MetricsServer> {
  if (!(metrics instanceof CoordinatorMetrics)) throw new TypeError('serveMetrics: metrics must be a CoordinatorMetrics');
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cannot serve metrics on ${host}:${options.port ?? 0}: ${e.message}`)));
    server.listen(options.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
