/**
 * proto/: the fedtune.v1 wire contract (fedtune.proto, health.proto — the single source of
 * truth), its generated TypeScript types (generated/, `npm run proto:gen`), the loader, and the
 * codecs between wire messages and domain types, one per concern (config, update, signing,
 * secagg). Services are implemented in server/ and used by
 * client/; limits.ts holds the message size limits both sides enforce.
 */
export * from './wire-error.js';
export * from './config-codec.js';
export * from './signing.js';
export * from './update-codec.js';
export * from './load.js';
export * from './limits.js';
export * from './secagg-codec.js';
