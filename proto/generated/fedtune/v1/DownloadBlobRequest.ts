// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface DownloadBlobRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'sha256'?: (string);
  /**
   * Resume from this byte.
   */
  'offset'?: (number | string | Long);
  /**
   * Largest chunk the device wants (the coordinator caps it at 1 MiB).
   */
  'maxChunkBytes'?: (number);
}

export interface DownloadBlobRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'sha256': (string);
  /**
   * Resume from this byte.
   */
  'offset': (number);
  /**
   * Largest chunk the device wants (the coordinator caps it at 1 MiB).
   */
  'maxChunkBytes': (number);
}
