/**
 * The standard gRPC health service (grpc.health.v1, proto/health.proto) with a real Watch: a
 * watcher gets the current status at once and every change after it, until it cancels or the
 * server ends the stream at shutdown. Check for a service not registered here answers NOT_FOUND;
 * Watch for one answers SERVICE_UNKNOWN and stays open (it may appear later), as the protocol says.
 */
import * as grpc from '@grpc/grpc-js';
import type { HealthHandlers } from '../proto/generated/grpc/health/v1/Health.js';
import type { HealthCheckRequest__Output } from '../proto/generated/grpc/health/v1/HealthCheckRequest.js';
import type { HealthCheckResponse } from '../proto/generated/grpc/health/v1/HealthCheckResponse.js';

/** The statuses a registered service can be in. */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

type Watcher = grpc.ServerWritableStream<HealthCheckRequest__Output, HealthCheckResponse>;

/** Serving statuses by service name ('' = the whole server) and their watchers. */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  /** Register `services` (e.g. '' and 'fedtune.v1.Coordinator'), all with `status`. */
  constructor(services: readonly string[], status: ServingStatus = 'SERVING') {
    if (!Array.isArray(services) || services.some((s) => typeof s !== 'string')) throw new TypeError('HealthService: services must be an array of service names');
    for (const s of services) this.statuses.set(s, status);
  }

  /** The status of `service`, or undefined if it is not registered. */
  status(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Set one service's status (registering it if new); its watchers hear of a change. */
  setStatus(service: string, status: ServingStatus): void {
    if (typeof service !== 'string') throw new TypeError('HealthService.setStatus: service must be a string');
    if (status !== 'SERVING' && status !== 'NOT_SERVING') throw new RangeError(`HealthService.setStatus: status must be SERVING or NOT_SERVING, got ${String(status)}`);
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w.write({ status });
  }

  /** Set every registered service's status. */
  setAll(status: ServingStatus): void {
    for (const s of [...this.statuses.keys()]) this.setStatus(s, status);
  }

  /** End every open Watch stream with OK, after what was written (shutdown: they would hold the server open). */
  endWatches(): void {
    for (const set of this.watchers.values()) for (const w of set) w.end();
    this.watchers.clear();
  }

  /** The grpc.health.v1.Health handlers. */
  handlers(): HealthHandlers {
    return {
      Check: (call, callback) => {
        const status = this.statuses.get(call.request.service);
        if (!status) return callback({ code: grpc.status.NOT_FOUND, details: `no health status for service "${call.request.service}"` });
        callback(null, { status });
      },
      Watch: (call) => {
        const service = call.request.service;
        const set = this.watchers.get(service) ?? new Set<Watcher>();
        this.watchers.set(service, set);
        set.add(call);
        const forget = (): void => {
          set.delete(call);
          if (set.size === 0 && this.watchers.get(service) === set) this.watchers.delete(service);
        };
        call.on('cancelled', forget);
        call.on('error', forget);
        call.write({ status: this.statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      },
    };
  }
}
