/**
 * The training settings a device runs a round with: the trainer's options (but the start token,
 * which the base's tokenizer gives) plus the frozen base's quantization, generative replay and
 * what the device's local data is. A domain type (proto/config-codec converts it).
 */
import type { QuantMode } from './quant.js';
import type { TrainOptions } from './trainer.js';

/**
 * What a device's local data is: `text` (plain text, every token scored) or `chat` (chat JSONL
 * conversations, rendered with the base's chat format; the loss is taken on assistant replies only).
 */
export type DataFormat = 'text' | 'chat';

/** Every {@link DataFormat}. */
export const DATA_FORMATS: readonly DataFormat[] = ['text', 'chat'];

/** Device training settings of a round. */
export interface DeviceTraining extends Omit<TrainOptions, 'startId'> {
  readonly quant: QuantMode;
  /** Share of training tokens sampled from the frozen base (generative replay), in [0, 1). Default 0. */
  readonly replayFraction?: number;
  /** Replay tokens a device samples once. Default 8192. */
  readonly replayTokens?: number;
  /** What the device's local data is. Default 'text'. */
  readonly dataFormat?: DataFormat;
}
