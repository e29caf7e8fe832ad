/**
 * A {@link DeviceTrainerFactory} for many simulated devices in one worker thread: instead of
 * each device training alone, the training requests of the devices running concurrently are
 * gathered and run as one {@link CohortTrainer} program (each device's adapter a slice of the
 * stacked batch, its own steps, clip and optimizer state), and every device gets its own result.
 * Updates equal what each device's LocalTrainer would produce (test/model/cohort-trainer.spec);
 * everything after training — the update's clip, noise, quantization and sealing — stays in
 * each Device.
 *
 * Requests are flushed when `maxCohort` compatible ones wait, or on the next macrotask (after
 * `lingerMs`, if set); while a cohort trains, new requests queue and form the next cohort. Runs
 * that cannot join a cohort (gradient checkpointing) train with LocalTrainer directly. A time
 * budget counts from the device's run() call, so time spent queued is part of it. Requests
 * with the same base identity and quantization share the first one's FrozenBase.
 */
import { Subject, type Observable } from 'rxjs';
import { CohortTrainer, cohortKey, type CohortOutcome, LocalTrainer, resolveTraining, type DeviceTrainer, type DeviceTrainerFactory, type FrozenBase, type LoraAdapter, type MaskedTokens, type TrainOptions, type TrainProgress, type TrainResult } from '../model/index.js';

/** Options of {@link BatchingTrainer}. */
export interface BatchingTrainerOptions {
  /** Most devices in one cohort. Default 16. */
  readonly maxCohort?: number;
  /** After the first request of a cohort arrives, wait this long for more (ms). Default 0: the next macrotask. */
  readonly lingerMs?: number;
}

/** What a {@link BatchingTrainer} has run so far. */
export interface BatchingStats {
  /** Cohorts run (a cohort of one runs as LocalTrainer). */
  readonly cohorts: number;
  /** Device runs trained in cohorts. */
  readonly runs: number;
  /** Device runs that trained alone (could not join a cohort). */
  readonly alone: number;
  /** Largest cohort. */
  readonly largest: number;
}

interface Request {
  readonly key: string;
  readonly base: FrozenBase;
  readonly adapter: LoraAdapter;
  readonly data: Int32Array | MaskedTokens;
  readonly options: TrainOptions;
  readonly events: Subject<TrainProgress>;
  /** When run() was called (performance.now()): a time budget counts from here, queueing included. */
  readonly at: number;
  resolve(r: TrainResult): void;
  reject(e: Error): void;
}

/** Gathers concurrent devices' training into cohorts. Pass `factory` as each Device's `trainer` option. */
export class BatchingTrainer {
  private readonly maxCohort: number;
  private readonly lingerMs: number;
  private readonly pending: Request[] = [];
  private running = false;
  private scheduled = false;
  private counts = { cohorts: 0, runs: 0, alone: 0, largest: 0 };

  constructor(options: BatchingTrainerOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('BatchingTrainer: options must be an object');
    this.maxCohort = options.maxCohort ?? 16;
    this.lingerMs = options.lingerMs ?? 0;
    if (!(Number.isInteger(this.maxCohort) && this.maxCohort >= 1)) throw new RangeError(`BatchingTrainer: maxCohort must be a positive integer, got ${options.maxCohort}`);
    if (!(this.lingerMs >= 0 && Number.isFinite(this.lingerMs))) throw new RangeError(`BatchingTrainer: lingerMs must be a finite number ≥ 0, got ${options.lingerMs}`);
  }

  /** The factory to give each Device (`trainer` option). Checks its arguments at once, as LocalTrainer does. */
  readonly factory: DeviceTrainerFactory = (base, adapter, data, options) => {
    const key = cohortKey(base, adapter, resolveTraining('BatchingTrainer', base, adapter, data, options));
    if (key === undefined) {
      this.counts.alone++;
      return new LocalTrainer(base, adapter, data, options);
    }
    const events = new Subject<TrainProgress>();
    let started = false;
    const trainer: DeviceTrainer = {
      progress$: events.asObservable(),
      run: () => {
        if (started) return Promise.reject(new Error('BatchingTrainer: run() was already called'));
        started = true;
        return new Promise<TrainResult>((resolve, reject) => {
          this.pending.push({ key, base, adapter, data, options, events, at: performance.now(), resolve, reject });
          this.schedule();
        });
      },
    };
    return trainer;
  };

  /** Counts so far. */
  stats(): BatchingStats {
    return { ...this.counts };
  }

  private schedule(): void {
    if (this.running || this.scheduled || this.pending.length === 0) return;
    const full = this.pending.filter((r) => r.key === this.pending[0].key).length >= this.maxCohort;
    this.scheduled = true;
    const go = (): void => {
      this.scheduled = false;
      void this.flush();
    };
    if (full) queueMicrotask(go);
    else if (this.lingerMs > 0) setTimeout(go, this.lingerMs);
    else setImmediate(go);
  }

  /** Run the oldest request's group (up to maxCohort, in arrival order) as one cohort. */
  private async flush(): Promise<void> {
    if (this.running || this.pending.length === 0) return;
    const key = this.pending[0].key;
    let batch: Request[] = [];
    for (let i = 0; i < this.pending.length && batch.length < this.maxCohort; ) {
      if (this.pending[i].key === key) batch.push(...this.pending.splice(i, 1));
      else i++;
    }
    this.running = true;
    try {
      const now = performance.now();
      // a device's time budget (its round deadline) also pays for the time it waited in the queue;
      // one spent in the queue trains no step, as LocalTrainer does when its budget is gone at the start
      const remaining = (r: Request): number => (r.options.timeBudgetMs === undefined ? Infinity : r.options.timeBudgetMs - (now - r.at));
      for (const r of batch.filter((x) => remaining(x) <= 0)) {
        r.events.complete();
        r.resolve({ steps: 0, tokens: 0, firstLoss: NaN, lastLoss: NaN, elapsedMs: 0, tokensPerSecond: 0, stoppedByBudget: true });
      }
      batch = batch.filter((x) => remaining(x) > 0);
      if (batch.length === 0) return;
      const left = (r: Request): TrainOptions => (r.options.timeBudgetMs === undefined ? r.options : { ...r.options, timeBudgetMs: remaining(r) });
      // a cohort of one is LocalTrainer itself (the same result, without the stacking)
      let progress: readonly Observable<TrainProgress>[];
      let run: () => Promise<CohortOutcome[]>;
      try {
        if (batch.length === 1) {
          const solo = new LocalTrainer(batch[0].base, batch[0].adapter, batch[0].data, left(batch[0]));
          progress = [solo.progress$];
          run = () => solo.run().then((result): CohortOutcome[] => [{ ok: true, result }], (e: unknown): CohortOutcome[] => [{ ok: false, error: e as Error }]);
        } else {
          const cohort = new CohortTrainer(batch[0].base, batch.map((r) => ({ adapter: r.adapter, data: r.data, options: left(r) })));
          progress = cohort.progress;
          run = () => cohort.run();
        }
      } catch (e) {
        for (const r of batch) r.reject(e as Error);
        return;
      }
      batch.forEach((r, k) =>
        progress[k].subscribe({
          next: (p) => r.events.next(p),
          complete: () => r.events.complete(),
          error: (e: unknown) => {
            if (r.events.observed) r.events.error(e);
          },
        }),
      );
      this.counts.cohorts++;
      this.counts.runs += batch.length;
      this.counts.largest = Math.max(this.counts.largest, batch.length);
      let outcomes: CohortOutcome[];
      try {
        outcomes = await run();
      } catch (e) {
        for (const r of batch) r.reject(e as Error);
        return;
      }
      outcomes.forEach((o, k) => (o.ok ? batch[k].resolve(o.result) : batch[k].reject(o.error)));
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
