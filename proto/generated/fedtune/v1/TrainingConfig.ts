// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface TrainingConfig {
  'steps'?: (number);
  'batchSize'?: (number);
  'seqLen'?: (number);
  'lr'?: (number | string);
  'weightDecay'?: (number | string);
  'clipNorm'?: (number | string);
  'timeBudgetMs'?: (number | string | Long);
  /**
   * The base's quantization on devices: "none", "int8", "int4".
   */
  'quant'?: (string);
  /**
   * Generative replay against forgetting: the share of training text the device samples from
   * the frozen base itself (0 = none), and how many tokens it samples once.
   */
  'replayFraction'?: (number | string);
  'replayTokens'?: (number);
  /**
   * FedProx proximal term μ: devices add (μ/2)‖w − w_global‖² to their loss (0 = none).
   */
  'proximalMu'?: (number | string);
  /**
   * What a device's local data is: "text" (plain text; "" means the same) or "chat" (JSONL
   * conversations {"messages":[{"role","content"}…]} rendered with the base's chat format, the
   * loss taken on assistant replies only). A device that cannot (its base has no chat format)
   * does not take part.
   */
  'dataFormat'?: (string);
}

export interface TrainingConfig__Output {
  'steps': (number);
  'batchSize': (number);
  'seqLen': (number);
  'lr': (number);
  'weightDecay': (number);
  'clipNorm': (number);
  'timeBudgetMs': (number);
  /**
   * The base's quantization on devices: "none", "int8", "int4".
   */
  'quant': (string);
  /**
   * Generative replay against forgetting: the share of training text the device samples from
   * the frozen base itself (0 = none), and how many tokens it samples once.
   */
  'replayFraction': (number);
  'replayTokens': (number);
  /**
   * FedProx proximal term μ: devices add (μ/2)‖w − w_global‖² to their loss (0 = none).
   */
  'proximalMu': (number);
  /**
   * What a device's local data is: "text" (plain text; "" means the same) or "chat" (JSONL
   * conversations {"messages":[{"role","content"}…]} rendered with the base's chat format, the
   * loss taken on assistant replies only). A device that cannot (its base has no chat format)
   * does not take part.
   */
  'dataFormat': (string);
}
