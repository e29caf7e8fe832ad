// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface DownloadBlobRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'sha256'?: (string);
  /**
   * Resume from this byte (0 = from the start).
   */
  'offset'?: (number | string | Long);
  /**
   * Largest chunk the device wants: 0 = the default 1 MiB; below 64 KiB counts as 64 KiB, above
   * 1 MiB as 1 MiB; negative is INVALID_ARGUMENT.
   */
  'maxChunkBytes'?: (number);
}

export interface DownloadBlobRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'sha256': (string);
  /**
   * Resume from this byte (0 = from the start).
   */
  'offset': (number);
  /**
   * Largest chunk the device wants: 0 = the default 1 MiB; below 64 KiB counts as 64 KiB, above
   * 1 MiB as 1 MiB; negative is INVALID_ARGUMENT.
   */
  'maxChunkBytes': (number);
}
