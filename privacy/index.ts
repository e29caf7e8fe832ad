/**
 * privacy/: stages applied to an update, in this order: clip → noise → quantize →
 * encrypt (box) or mask (secure aggregation), plus request signing. Pure functions with injected
 * randomness. Built so far: clipping, box encryption, request signing; noise, the accountant
 * and secure aggregation come with the federation and privacy issues.
 */
export * from './accountant/index.js';
export * from './box.js';
export * from './adaptive-clip.js';
export * from './clip.js';
export * from './compress.js';
export * from './noise.js';
export * from './secagg/index.js';
export * from './sign.js';
export * from './key-check.js';
