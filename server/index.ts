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
export * from './program-runner.js';
export * from './service.js';
export * from './health.js';
export * from './start.js';
export * from './store.js';
export * from './secagg-round.js';
export * from './secagg-service.js';
export * from './privacy-budget.js';
export * from './round-plan.js';
export * from './update-intake.js';
export * from './releases.js';
export * from './metrics.js';
export * from './log.js';
export * from './log-pretty.js';
export * from './program-health.js';
export * from './eval/eval-spec.js';
export * from './eval/evaluator.js';
