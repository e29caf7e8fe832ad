/** Message size limits shared by devices and the coordinator. */

/** Largest chunk of a blob or update: 1 MiB. */
export const MAX_CHUNK_BYTES = 1 << 20;
/** Largest gRPC message either side accepts: one chunk plus room for its envelope. */
export const MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + 64 * 1024;
