/**
 * Running the coordinator as a gRPC service: the Coordinator service and grpc.health.v1 on one
 * port, message sizes capped just above one chunk, and a graceful shutdown.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../proto/load.js';
import { MAX_MESSAGE_BYTES } from '../proto/limits.js';
import { Coordinator, type CoordinatorOptions } from './coordinator.js';
import { coordinatorHandlers } from './service.js';

/** Options of {@link startCoordinator}. */
export interface StartOptions extends CoordinatorOptions {
  /** Host to bind. Default "127.0.0.1". */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Server credentials (TLS). Default insecure (updates are sealed end to end regardless). */
  readonly credentials?: grpc.ServerCredentials;
}

/** A running coordinator. */
export interface RunningCoordinator {
  readonly coordinator: Coordinator;
  readonly port: number;
  readonly address: string;
  /** Stop accepting calls, let running ones finish (up to `graceMs`), then close the database. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Start a coordinator on a port. */
export async function startCoordinator(options: StartOptions): Promise<RunningCoordinator> {
  const coordinator = new Coordinator(options);
  const { fedtune, health } = loadProtos();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  server.addService(fedtune.fedtune.v1.Coordinator.service, coordinatorHandlers(coordinator));
  let serving = true;
  const known = new Set(['', 'fedtune.v1.Coordinator']);
  server.addService(health.grpc.health.v1.Health.service, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<{ status: string }>) => {
      if (!known.has(call.request.service)) return cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      cb(null, { status: serving ? 'SERVING' : 'NOT_SERVING' });
    },
    Watch: (call: grpc.ServerWritableStream<{ service: string }, { status: string }>) => {
      call.write({ status: known.has(call.request.service) ? (serving ? 'SERVING' : 'NOT_SERVING') : 'SERVICE_UNKNOWN' });
      call.end();
    },
  });
  const host = options.host ?? '127.0.0.1';
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${options.port ?? 0}`, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  } catch (e) {
    coordinator.close();
    throw new Error(`cannot listen on ${host}:${options.port ?? 0}: ${(e as Error).message}`);
  }
  coordinator.start();
  let closing: Promise<void> | undefined;
  return {
    coordinator,
    port,
    address: `${host}:${port}`,
    shutdown(graceMs = 5000): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        serving = false;
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          coordinator.close();
          resolve();
        });
        // open server streams (WatchRounds) would hold tryShutdown until the grace period
        coordinator.stopPrograms();
      });
      return closing;
    },
  };
}
