/**
 * Loading the wire contract: proto/fedtune.proto and proto/health.proto, parsed at run time by
 * @grpc/proto-loader with the options the generated types in proto/generated/ assume
 * (camelCase fields, 64-bit integers as numbers, enums as strings, defaults and oneof names).
 * Requests of the Coordinator service keep their exact wire bytes beside the decoded object
 * (proto/raw-request.ts).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as FedtuneGrpc } from './generated/fedtune.js';
import type { ProtoGrpcType as HealthGrpc } from './generated/health.js';
import { keepRawRequests } from './raw-request.js';

/** proto-loader options; `npm run proto:gen` uses the same ones for the types. */
export const PROTO_OPTIONS: protoLoader.Options = Object.freeze({ keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });

/** Folder of the .proto files (beside this module in the source tree, or two levels up from dist/proto). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'fedtune.proto'))) return dir;
    if (existsSync(join(dir, 'proto', 'fedtune.proto'))) return join(dir, 'proto');
    dir = dirname(dir);
  }
  throw new Error('protoDir: proto/fedtune.proto was not found beside the installed package');
}

let cached: { definition: protoLoader.PackageDefinition; fedtune: FedtuneGrpc; health: HealthGrpc } | undefined;

/** The parsed contract: the raw package definition and typed service constructors. */
export function loadProtos(): { definition: protoLoader.PackageDefinition; fedtune: FedtuneGrpc; health: HealthGrpc } {
  if (!cached) {
    const dir = protoDir();
    const definition = protoLoader.loadSync([join(dir, 'fedtune.proto'), join(dir, 'health.proto')], PROTO_OPTIONS);
    // the coordinator's requests keep their wire bytes (the signing rule) and are checked against the schema
    keepRawRequests(definition, 'fedtune.v1.Coordinator');
    const loaded = grpc.loadPackageDefinition(definition);
    cached = { definition, fedtune: loaded as unknown as FedtuneGrpc, health: loaded as unknown as HealthGrpc };
  }
  return cached;
}
