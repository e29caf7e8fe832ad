/**
 * Running the coordinator as a gRPC service: the Coordinator service and grpc.health.v1 on one
 * port, message sizes capped just above one chunk, and a graceful shutdown that drains:
 *
 *   health NOT_SERVING ('' and fedtune.v1.Coordinator; watchers hear it) ─(drainMs: still serving,
 *   so pollers see it)─▶ health watches end, new calls refused, in-flight calls finish ─(graceMs at
 *   most, then cancelled)─▶ programs stopped, database closed.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../proto/load.js';
import { MAX_MESSAGE_BYTES } from '../proto/limits.js';
import { Coordinator, type CoordinatorOptions } from './coordinator.js';
import { HealthService } from './health.js';
import { coordinatorHandlers } from './service.js';
import { ReflectionService } from '@grpc/reflection';
import type { CoordinatorMetrics } from './metrics.js';
import { trackProgramHealth } from './program-health.js';

/** Streams one client connection may have open at once. */
export const MAX_STREAMS_PER_CONNECTION = 1000;

/** Options of {@link startCoordinator}. */
export interface StartOptions extends CoordinatorOptions {
  /** Host to bind. Default "127.0.0.1". */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Server credentials (TLS). Default insecure (updates are sealed end to end regardless). */
  readonly credentials?: grpc.ServerCredentials;
  /**
   * At shutdown, ms between health turning NOT_SERVING and refusing new calls, so load balancers
   * polling Check see it while the port is open. Default 0.
   */
  readonly drainMs?: number;
  /** Metrics to feed (server/metrics.ts): its interceptor counts every call, and it follows the programs' rounds. */
  readonly metrics?: CoordinatorMetrics;
}

/** A running coordinator. */
export interface RunningCoordinator {
  readonly coordinator: Coordinator;
  readonly port: number;
  readonly address: string;
  /** The health statuses this server reports. */
  readonly health: HealthService;
  /**
   * Drain and stop: health NOT_SERVING, `drainMs` of serving on, then no new calls while running
   * ones finish (up to `graceMs`, default 5000), then the database closes. Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** Start a coordinator on a port. */
export async function startCoordinator(options: StartOptions): Promise<RunningCoordinator> {
  const drainMs = options.drainMs ?? 0;
  if (!Number.isFinite(drainMs) || drainMs < 0) {
    throw new RangeError(`startCoordinator: options.drainMs must be a non-negative number of ms, got ${drainMs}`);
  }
  const coordinator = await Coordinator.open(options);
  const { fedtune, health: healthProto } = loadProtos();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // a connection may hold at most this many streams at once (HTTP/2 would allow 2^32 − 1, each
    // costing memory before any request arrives), connections with no call for 5 minutes are
    // closed, and keepalive pings find dead peers
    'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
    'grpc.max_connection_idle_ms': 5 * 60_000,
    'grpc.keepalive_time_ms': 2 * 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    interceptors: options.metrics ? [options.metrics.interceptor()] : [],
  });
  server.addService(fedtune.fedtune.v1.Coordinator.service, coordinatorHandlers(coordinator));
  const health = new HealthService(['', 'fedtune.v1.Coordinator']);
  server.addService(healthProto.grpc.health.v1.Health.service, health.handlers());
  // grpc.reflection.v1 and v1alpha: grpcurl-style tools list the services and call them
  new ReflectionService(loadProtos().definition).addToServer(server);
  trackProgramHealth(health, coordinator);
  options.metrics?.observe(coordinator);
  const host = options.host ?? '127.0.0.1';
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${options.port ?? 0}`, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  } catch (e) {
    await coordinator.close();
    throw new Error(`cannot listen on ${host}:${options.port ?? 0}: ${(e as Error).message}`);
  }
  await coordinator.start();
  let closing: Promise<void> | undefined;
  return {
    coordinator,
    port,
    address: `${host}:${port}`,
    health,
    shutdown(graceMs = 5000): Promise<void> {
      closing ??= (async () => {
        health.setAll('NOT_SERVING');
        if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), graceMs);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
          // open server streams (health watches, WatchRounds) would hold tryShutdown until the grace period
          health.endWatches();
          coordinator.stopPrograms();
        });
        await coordinator.close();
      })();
      return closing;
    },
  };
}
