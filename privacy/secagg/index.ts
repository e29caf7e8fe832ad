/** Secure aggregation (SecAgg+): Shamir sharing, mask arithmetic, device and coordinator steps. */
export * from './coordinator.js';
export * from './mask-sum.js';
export * from './masking.js';
export * from './protocol.js';
export * from './shamir.js';
