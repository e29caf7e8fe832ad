/**
 * Program configuration wire ↔ domain: LoRA and training settings. Imports only model/ leaf
 * modules that load no tfjs.
 */
import { loraConfig, type LoraConfig } from '../model/lora-config.js';
import { QUANT_MODES, type QuantMode } from '../model/quant.js';
import { isMatrixName, MATRIX_NAMES, type MatrixName } from '../model/weights.js';
import { DATA_FORMATS, type DataFormat, type DeviceTraining } from '../model/device-training.js';
import type { LoraConfig as WireLoraConfig, LoraConfig__Output as WireLoraConfigOut } from './generated/fedtune/v1/LoraConfig.js';
import type { TrainingConfig as WireTraining, TrainingConfig__Output as WireTrainingOut } from './generated/fedtune/v1/TrainingConfig.js';
import { WireFormatError } from './wire-error.js';

/** Domain LoRA config → wire. */
export function loraConfigToWire(c: LoraConfig): WireLoraConfig {
  return { rank: c.rank, alpha: c.alpha, targets: [...c.targets], dropout: c.dropout, freezeA: c.freezeA, seed: c.seed };
}

/** Wire LoRA config → validated domain config. */
export function loraConfigFromWire(w: WireLoraConfigOut | null | undefined): LoraConfig {
  if (!w) throw new WireFormatError('the LoRA config is missing');
  const bad = w.targets.find((t) => !isMatrixName(t));
  if (bad !== undefined) throw new WireFormatError(`unknown LoRA target "${bad}"; expected some of ${MATRIX_NAMES.join(', ')}`);
  try {
    return loraConfig({ rank: w.rank, alpha: w.alpha, targets: w.targets as MatrixName[], dropout: w.dropout, freezeA: w.freezeA, seed: w.seed }, 'LoRA config');
  } catch (e) {
    throw new WireFormatError((e as Error).message);
  }
}

/** Domain training settings → wire. */
export function trainingToWire(t: DeviceTraining): WireTraining {
  return {
    steps: t.steps ?? 0,
    batchSize: t.batchSize ?? 0,
    seqLen: t.seqLen ?? 0,
    lr: t.lr ?? 0,
    weightDecay: t.weightDecay ?? 0,
    clipNorm: t.clipNorm ?? 0,
    timeBudgetMs: t.timeBudgetMs ?? 0,
    quant: t.quant,
    replayFraction: t.replayFraction ?? 0,
    replayTokens: t.replayTokens ?? 0,
    proximalMu: t.proximalMu ?? 0,
    dataFormat: t.dataFormat ?? 'text',
  };
}

/** Wire training settings → domain (zeros mean "use the trainer's default"; an empty data format is "text"). */
export function trainingFromWire(w: WireTrainingOut | null | undefined): DeviceTraining {
  if (!w) throw new WireFormatError('the training config is missing');
  const quant = (w.quant || 'none') as QuantMode;
  if (!QUANT_MODES.includes(quant)) throw new WireFormatError(`unknown quantization "${w.quant}"; expected one of ${QUANT_MODES.join(', ')}`);
  const dataFormat = (w.dataFormat || 'text') as DataFormat;
  if (!DATA_FORMATS.includes(dataFormat)) throw new WireFormatError(`unknown training data format "${w.dataFormat}"; expected one of ${DATA_FORMATS.join(', ')}`);
  const pos = (v: number): number | undefined => (v > 0 ? v : undefined);
  for (const [k, v] of Object.entries(w)) {
    if (typeof v === 'number' && (!Number.isFinite(v) || v < 0)) throw new WireFormatError(`training.${k} must be a finite number ≥ 0, got ${v}`);
  }
  if (!(w.replayFraction < 1)) throw new WireFormatError(`training.replayFraction must be in [0, 1), got ${w.replayFraction}`);
  return {
    steps: pos(w.steps),
    batchSize: pos(w.batchSize),
    seqLen: pos(w.seqLen),
    lr: pos(w.lr),
    weightDecay: w.weightDecay,
    clipNorm: w.clipNorm,
    timeBudgetMs: pos(w.timeBudgetMs),
    quant,
    replayFraction: w.replayFraction,
    replayTokens: pos(w.replayTokens),
    proximalMu: w.proximalMu,
    dataFormat,
  };
}
