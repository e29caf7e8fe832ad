/**
 * server/: the coordinator — program configs, the SQLite store, the content-addressed blob
 * store, the per-program round state machine (rxjs), the domain service (enrolment,
 * authentication, update validation), the gRPC handlers with their one `toStatus()`, and
 * `startCoordinator` to run it all on a port.
 */
export * from './blob-service.js';
export * from './blob-store.js';
export * from './coordinator.js';
export * from './errors.js';
export * from './program-config.js';
export { ConfigError, type ConfigIssue } from './config-issues.js';
export { AGGREGATIONS, COMPRESSIONS, DP_MODES, RELEASE_SIGNING, ROBUST_RULES, SERVER_OPTIMIZERS, type Aggregation, type Compression } from './config-names.js';
export { configFileSchema, programSchema, toConfigIssues, type ConfigFile } from './config-schema.js';
export * from './program-runner.js';
export * from './service.js';
export * from './health.js';
export * from './start.js';
export * from './storage/index.js';
export * from './secagg-round.js';
export * from './secagg-service.js';
export * from './privacy-budget.js';
export * from './round-plan.js';
export * from './update-intake.js';
export * from './releases.js';
export * from './admin.js';
export * from './dashboard/feed.js';
export * from './dashboard/http.js';
export * from './tls.js';
export * from './x509.js';
export * from './metrics.js';
export * from './log.js';
export * from './log-pretty.js';
export * from './program-health.js';
export * from './eval/eval-spec.js';
export * from './eval/evaluator.js';
