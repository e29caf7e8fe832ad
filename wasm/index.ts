/** Encoders for hand-assembled WebAssembly modules. */
export * from './encode.js';
