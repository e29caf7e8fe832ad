// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface UploadUpdateResponse {
  'roundId'?: (string);
  'bytesReceived'?: (number | string | Long);
}

export interface UploadUpdateResponse__Output {
  'roundId': (string);
  'bytesReceived': (number);
}
