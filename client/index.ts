/**
 * client/: the device library — identity and enrolment, signed calls with retries and backoff,
 * resumable verified blob download, local LoRA training rounds, and sealed chunked uploads.
 */
export * from './build-update.js';
export * from './device.js';
export * from './download-blob.js';
export * from './identity.js';
export * from './local-data.js';
export * from './rpc.js';
export * from './upload-update.js';
export * from './secagg-client.js';
export * from './releases.js';
export * from './tls.js';
