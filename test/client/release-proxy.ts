/**
 * A hostile network or coordinator host between a device and a real coordinator, over real gRPC:
 * requests are forwarded byte for byte (their signatures stay valid); responses can be rewritten,
 * and blobs the proxy invents are served by the proxy itself.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../proto/load.js';

type Codec = { requestDeserialize(b: Buffer): Record<string, unknown>; responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): Record<string, unknown> };

/** How the proxy rewrites responses; blobs it serves by SHA-256. */
export interface ProxyRules {
  /** Rewrite a decoded response of a unary method (GetProgram, CheckIn, …). */
  unary?: (method: string, res: Record<string, unknown>) => Record<string, unknown>;
  /** Blobs served by the proxy instead of the coordinator. */
  readonly blobs: Map<string, Uint8Array>;
}

/** A running proxy. */
export interface Proxy {
  readonly address: string;
  readonly rules: ProxyRules;
  /** Serve `bytes` as a blob; returns its SHA-256. */
  serve(bytes: Uint8Array): string;
  close(): Promise<void>;
}

/** Start a proxy in front of `target` ("host:port"). */
export async function startProxy(target: string): Promise<Proxy> {
  const def = loadProtos().fedtune.fedtune.v1.Coordinator.service as unknown as Record<string, Codec & { path: string; requestStream: boolean; responseStream: boolean }>;
  const id = (b: Buffer): Buffer => b;
  const raw: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) raw[name] = { ...m, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } as unknown as grpc.MethodDefinition<unknown, unknown>;
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const rules: ProxyRules = { blobs: new Map() };
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(def)) {
    if (!m.requestStream && !m.responseStream) {
      handlers[name] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        client.makeUnaryRequest(m.path, id, id, call.request, (err, res) => {
          if (err || !res) return cb(err);
          cb(null, rules.unary ? m.responseSerialize(rules.unary(name, m.responseDeserialize(res))) : res);
        });
      };
    } else if (m.responseStream) {
      handlers[name] = (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const req = m.requestDeserialize(call.request);
        const own = name === 'DownloadBlob' ? rules.blobs.get(req.sha256 as string) : undefined;
        if (own) {
          const offset = Number(req.offset);
          call.write(m.responseSerialize({ sha256: req.sha256, offset, data: Buffer.from(own.subarray(offset)), totalSize: own.length }));
          return call.end();
        }
        const up = client.makeServerStreamRequest(m.path, id, id, call.request);
        up.on('data', (b: Buffer) => call.write(b));
        up.on('end', () => call.end());
        up.on('error', (e: grpc.ServiceError) => call.destroy(e));
        call.on('cancelled', () => up.cancel());
      };
    } else {
      handlers[name] = (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const up = client.makeClientStreamRequest(m.path, id, id, (err, res) => cb(err, res));
        call.on('data', (b: Buffer) => up.write(b));
        call.on('end', () => up.end());
      };
    }
  }
  const server = new grpc.Server();
  server.addService(raw as grpc.ServiceDefinition, handlers);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    address: `127.0.0.1:${port}`,
    rules,
    serve(bytes) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      rules.blobs.set(sha, bytes);
      return sha;
    },
    close: () =>
      new Promise<void>((resolve) => {
        client.close();
        server.tryShutdown(() => resolve());
      }),
  };
}
