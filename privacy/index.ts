/**
 * privacy/: update stages (clip → noise → quantize → encrypt/mask), the DP accountant and secure
 * aggregation, with injected randomness. Not built yet: see the federation and privacy issues.
 */
export {};
