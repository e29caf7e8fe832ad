/** Test programs over the real stories260K base, and the one way specs run a set of real devices against a coordinator. */
import { join } from 'node:path';
import { Device, type DeviceOptions, type DeviceSummary } from '../../client/index.js';
import { programSpec } from '../../server/index.js';
import { corpus, MODEL } from '../helpers.js';

/** The enrolment token of test programs. */
export const TOKEN = 'oz-partner-secret';

/** A small but real program: stories260K, rank-4 LoRA on wq/wv, a few steps per round. */
export function smallProgram(id: string, over: Record<string, unknown> = {}) {
  return programSpec({
    id,
    base: MODEL.bin,
    tokenizer: MODEL.tok,
    enrolmentToken: TOKEN,
    lora: { rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'], seed: 5 },
    training: { steps: 6, batchSize: 4, seqLen: 64, lr: 1e-2, quant: 'int8' },
    cohortSize: 3,
    minUpdates: 3,
    // explicit: a published version needs at least two devices' updates (tests of one-device rounds set 1)
    minContributors: 2,
    overSelect: 1,
    rounds: 2,
    roundDeadlineMs: 120_000,
    retryDelayMs: 200,
    ...over,
  });
}

/** What {@link runDevices} runs. */
export interface DeviceFleet {
  /** The coordinator's host:port. */
  readonly address: string;
  readonly programId: string;
  /** Device i keeps its identity and downloads in `${dir}/${programId}-${i}` (the same on every call, so a rerun is the same device). */
  readonly dir: string;
  /** Which devices run (their indices). */
  readonly ids: readonly number[];
  /** Characters of the Wizard of Oz each device trains on: device i gets shard i. Default 20,000. */
  readonly shardChars?: number;
  /** Further options of device i (seed defaults to i). */
  readonly options?: (i: number) => Partial<DeviceOptions>;
  /** Build device i from its options (default `new Device(options)`; e.g. a simulated attacker). */
  readonly make?: (options: DeviceOptions, i: number) => Device;
  /** Called with each device before it runs (subscribe to its progress$); `abort` stops that device's run. */
  readonly watch?: (device: Device, i: number, abort: () => void) => void;
}

function runOne(f: DeviceFleet, i: number, oz: string): Promise<DeviceSummary> {
  const shard = f.shardChars ?? 20_000;
  const ac = new AbortController();
  const options: DeviceOptions = { address: f.address, programId: f.programId, dataDir: join(f.dir, `${f.programId}-${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * shard, (i + 1) * shard)], seed: i, ...f.options?.(i) };
  const d = f.make ? f.make(options, i) : new Device(options);
  f.watch?.(d, i, () => ac.abort());
  return d.run(ac.signal).finally(() => d.close());
}

/** Run the fleet's devices concurrently until each finishes; rejects if any device's run does. */
export function runDevices(f: DeviceFleet): Promise<DeviceSummary[]> {
  const oz = corpus('wizard-of-oz.txt');
  return Promise.all(f.ids.map((i) => runOne(f, i, oz)));
}

/** Run the fleet's devices concurrently; every outcome, fulfilled or rejected (for devices that are meant to fail). */
export function runDevicesSettled(f: DeviceFleet): Promise<PromiseSettledResult<DeviceSummary>[]> {
  const oz = corpus('wizard-of-oz.txt');
  return Promise.allSettled(f.ids.map((i) => runOne(f, i, oz)));
}
