/**
 * The closed name lists of the config schema (server/config-schema.ts) as zod enums: what a
 * program config and the CLI flags that take the same names (`--server-opt`, `--robust`,
 * `--compression`, `--aggregation`, `--quant`) accept. Light (zod only), so any command may import it.
 */
import { z } from 'zod';
import type { RobustRule, ServerOptimizerKind } from '../aggregators/index.js';
import { DATA_FORMATS as MODEL_DATA_FORMATS, type DataFormat } from '../model/device-training.js';
import { QUANT_MODES as MODEL_QUANT_MODES, type QuantMode } from '../model/quant.js';
import { quoted, show } from './config-issues.js';

/** A zod enum over `names` whose refusal reads `must be one of "a", "b", got X`. */
function names<const T extends readonly [string, ...string[]]>(list: T) {
  return z.enum(list, { error: (iss) => `must be one of ${quoted(list)}, got ${show(iss.input)}` });
}

/** Server optimizers over the FedAvg mean of deltas (Reddi et al. 2021). */
export const serverOptimizerKind = names(['fedavg', 'fedavgm', 'fedadagrad', 'fedadam', 'fedyogi']);
/** Robust aggregation rules. */
export const robustRuleName = names(['median', 'trimmed-mean', 'krum', 'multi-krum', 'bulyan']);
/** How updates travel: float32, or unbiased stochastic 8- or 4-bit quantization. */
export const compressionName = names(['none', 'q8', 'q4']);
/** How deltas become the next adapter. */
export const aggregationName = names(['fedavg', 'exact-dw']);
/** How updates are protected by differential privacy. */
export const dpModeName = names(['none', 'central', 'local', 'distributed']);
/** How a round picks its participants (server/sampling.ts). */
export const samplingSchemeName = names(['first-come', 'poisson', 'fixed-cohort']);
/** Who signs a program's adapter releases. */
export const releaseSigningName = names(['coordinator', 'offline']);
/** The frozen base's quantization on devices (model/quant.ts owns the list). */
export const quantModeName = names(MODEL_QUANT_MODES as readonly QuantMode[] as [QuantMode, ...QuantMode[]]);
/** What a device's local data is (model/device-training.ts owns the list). */
export const dataFormatName = names(MODEL_DATA_FORMATS as readonly DataFormat[] as [DataFormat, ...DataFormat[]]);

/** Every server optimizer kind. */
export const SERVER_OPTIMIZERS = serverOptimizerKind.options;
/** Every robust rule. */
export const ROBUST_RULES = robustRuleName.options;
/** Every update compression. */
export const COMPRESSIONS = compressionName.options;
/** Every aggregation. */
export const AGGREGATIONS = aggregationName.options;
/** Every DP mode. */
export const DP_MODES = dpModeName.options;
/** Sampling scheme names, as a plain list. */
export const SAMPLING_SCHEMES = samplingSchemeName.options;
/** Every release signing mode. */
export const RELEASE_SIGNING = releaseSigningName.options;
/** Every quantization mode of the frozen base. */
export const QUANT_MODES = quantModeName.options;
/** Every device data format. */
export const DATA_FORMATS = dataFormatName.options;

/** How updates are protected by differential privacy. */
export type DpMode = z.infer<typeof dpModeName>;
/** How updates travel. */
export type Compression = z.infer<typeof compressionName>;
/** How deltas become the next adapter. */
export type Aggregation = z.infer<typeof aggregationName>;

// the lists and the aggregators' own types must name the same things (a compile error otherwise)
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const sameOptimizers: Same<z.infer<typeof serverOptimizerKind>, ServerOptimizerKind> = true;
const sameRobust: Same<z.infer<typeof robustRuleName>, RobustRule['rule']> = true;
void sameOptimizers;
void sameRobust;
