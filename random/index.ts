/**
 * random/: the one low-level home of injected randomness ({@link Rng}), shared by model/,
 * privacy/, aggregators/ and proto/. Crypto-strength in production, seeded only in tests and
 * for batch sampling.
 */
export * from './rng.js';
