/**
 * sim/: a whole federation on one machine — the real coordinator, devices as worker threads on
 * partner-domain text, per-round evaluation, baselines, reports. Used by `npm run demo` and
 * `fedtune simulate`.
 */
export * from './attacker-device.js';
export * from './progress-board.js';
export * from './report.js';
export * from './simulate.js';
export * from './domains.js';
export * from './population/index.js';
