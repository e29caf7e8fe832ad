// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface BlobRef {
  /**
   * hex SHA-256 of the blob's bytes: its name and its checksum.
   */
  'sha256'?: (string);
  'sizeBytes'?: (number | string | Long);
  /**
   * e.g. "llama2c", "gguf", "fedtune-lora".
   */
  'format'?: (string);
}

export interface BlobRef__Output {
  /**
   * hex SHA-256 of the blob's bytes: its name and its checksum.
   */
  'sha256': (string);
  'sizeBytes': (number);
  /**
   * e.g. "llama2c", "gguf", "fedtune-lora".
   */
  'format': (string);
}
