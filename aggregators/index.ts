/**
 * aggregators/: the Strategy interface and pure aggregation math over Float32Array (no I/O, no
 * tfjs). Not built yet: see the federation and aggregation issues.
 */
export {};
