// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface BlobChunk {
  'sha256'?: (string);
  'offset'?: (number | string | Long);
  'data'?: (Buffer | Uint8Array | string);
  'totalSize'?: (number | string | Long);
}

export interface BlobChunk__Output {
  'sha256': (string);
  'offset': (number);
  'data': (Buffer);
  'totalSize': (number);
}
