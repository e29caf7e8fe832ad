/**
 * aggregators/: pure aggregation math over Float32Array (no I/O, no tfjs). Built so far:
 * streaming FedAvg; the Strategy interface and the rest of the suite come with the federation
 * and aggregation issues.
 */
export * from './fedavg.js';
