/**
 * proto/: the fedtune.v1 wire contract (.proto files, the single source of truth for gRPC) and
 * the codec between wire messages and domain types. Not built yet: see the federation issue.
 */
export {};
