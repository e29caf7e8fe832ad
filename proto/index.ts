/**
 * proto/: the fedtune.v1 wire contract (fedtune.proto, health.proto — the single source of
 * truth), its generated TypeScript types (generated/, `npm run proto:gen`), the loader, and the
 * codec between wire messages and domain types. Services are implemented in server/ and used by
 * client/; limits.ts holds the message size limits both sides enforce.
 */
export * from './codec.js';
export * from './load.js';
export * from './limits.js';
export * from './secagg-codec.js';
