/**
 * A base model file's identity without loading its weights or TensorFlow.js: its format
 * (llama2.c checkpoint or GGUF, told apart by the GGUF magic), architecture, SHA-256 and size.
 * The coordinator reads this; devices open the base with open-base.ts.
 */
import { sha256OfFd } from './file-hash.js';
import { closeSync, existsSync, fstatSync, readSync, statSync } from 'node:fs';
import { hfBaseInfo } from './hf-files.js';
import { CHECKPOINT_DATA_OFFSET, checkpointLayout, openModelFile } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import { ggufConfig } from './gguf-config.js';
import { closeGgufFile, openGgufFile } from './gguf.js';

/** A base file's format. */
export type BaseFormat = 'llama2c' | 'gguf' | 'hf';

/** What identifies a base file. */
export interface BaseInfo {
  readonly format: BaseFormat;
  readonly config: LlamaConfig;
  /** Hex SHA-256 of the file: the base's identity. */
  readonly sha256: string;
  readonly sizeBytes: number;
}


/** 'hf' for a directory (a Hugging Face checkpoint), 'gguf' if the file starts with the GGUF magic, else 'llama2c'. */
export function baseFormat(path: string): BaseFormat {
  if (typeof path === 'string' && path !== '' && existsSync(path) && statSync(path).isDirectory()) return 'hf';
  const fd = openModelFile(path);
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'GGUF' ? 'gguf' : 'llama2c';
  } finally {
    closeSync(fd);
  }
}

/** Format, architecture, SHA-256 and size of a base file, streaming a llama2.c checkpoint through the hash. */
export function readBaseInfo(path: string): BaseInfo {
  const format = baseFormat(path);
  if (format === 'hf') {
    const info = hfBaseInfo(path);
    return { format, config: info.config, sha256: info.sha256, sizeBytes: info.sizeBytes };
  }
  let config: LlamaConfig;
  if (format === 'gguf') {
    const file = openGgufFile(path);
    try {
      config = ggufConfig(file);
    } finally {
      closeGgufFile(file);
    }
  }
  const fd = openModelFile(path);
  try {
    const size = fstatSync(fd).size;
    if (format === 'llama2c') {
      const header = new Uint8Array(CHECKPOINT_DATA_OFFSET);
      readSync(fd, header, 0, header.length, 0);
      config = checkpointLayout(header, size, path).config;
    }
    return { format, config: config!, sha256: sha256OfFd(fd), sizeBytes: size };
  } finally {
    closeSync(fd);
  }
}
