// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface BlobRef {
  /**
   * hex SHA-256 of the blob's bytes: its name and its checksum.
   */
  'sha256'?: (string);
  'sizeBytes'?: (number | string | Long);
  /**
   * e.g. "llama2c", "gguf", "hf" (a Hugging Face checkpoint directory), "fedtune-lora".
   */
  'format'?: (string);
  /**
   * How the blob holds its content: "" = the blob is the file itself (every blob before this
   * field existed); "ustar" = a POSIX ustar archive of a directory, to unpack (see CONTRACT.md).
   */
  'container'?: (string);
  /**
   * With a container: the identity of the unpacked content (for format "hf": the hex SHA-256 of
   * the directory's sha256sum-style listing, what adapters record as base_sha256); else "".
   */
  'contentSha256'?: (string);
}

export interface BlobRef__Output {
  /**
   * hex SHA-256 of the blob's bytes: its name and its checksum.
   */
  'sha256': (string);
  'sizeBytes': (number);
  /**
   * e.g. "llama2c", "gguf", "hf" (a Hugging Face checkpoint directory), "fedtune-lora".
   */
  'format': (string);
  /**
   * How the blob holds its content: "" = the blob is the file itself (every blob before this
   * field existed); "ustar" = a POSIX ustar archive of a directory, to unpack (see CONTRACT.md).
   */
  'container': (string);
  /**
   * With a container: the identity of the unpacked content (for format "hf": the hex SHA-256 of
   * the directory's sha256sum-style listing, what adapters record as base_sha256); else "".
   */
  'contentSha256': (string);
}
