/** The privacy accountant: RDP of the subsampled Gaussian, conversions to (ε, δ), calibration. */
export * from './calibrate.js';
export * from './compose.js';
export * from './conversion.js';
export * from './rdp.js';
export * from './prv.js';
export { logErfc } from './special.js';
