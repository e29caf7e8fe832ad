/**
 * aggregators/: pure aggregation math over Float32Array (no I/O, no tfjs). Built so far:
 * streaming FedAvg, robust aggregators (median, trimmed mean, Krum, Multi-Krum, Bulyan, norm
 * bounding) and server optimizers (FedAvgM, FedAdagrad, FedAdam, FedYogi). The Strategy
 * interface that wires them into rounds comes with the federation issue.
 */
export * from './fedavg.js';
export { nativeFedAvgStatus, setNativeFedAvg } from './fedavg-native.js';
export * from './lora-exact.js';
export * from './robust.js';
export * from './server-optimizers.js';
export * from './strategy.js';
export * from './lora-strategy.js';
