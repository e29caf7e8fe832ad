/**
 * Server-side evaluation: after each round the coordinator scores the new adapter on the
 * program's held-out data (eval-spec.ts) in a worker thread (eval-worker.ts), so the event loop
 * keeps serving devices, health checks and scrapes while TF.js runs. One worker per program,
 * started with the coordinator (it loads the base and tokenizes the data once); requests are
 * answered one at a time. A worker that dies or misses `timeoutMs` is replaced at the next request.
 */
import { Worker } from 'node:worker_threads';
import type { LlamaConfig } from '../../model/config.js';
import type { ProgramSpec } from '../program-config.js';
import type { EvalReply, EvalWorkerData } from './eval-worker.js';

/** One adapter's evaluation: `heldoutLoss` (nats/token) over `heldoutTokens`, and `baseTextLoss` when the program names a base-domain text. */
export type RoundEvalResult = Readonly<Record<string, number>> & { readonly heldoutLoss: number; readonly heldoutTokens: number };

/** What a program runner asks of server-side evaluation. */
export interface RoundEvaluator {
  /** The loss of the adapter with flat values `global` (made by round `round`). */
  evaluate(global: Float32Array, round: number): Promise<RoundEvalResult>;
  /** Stop the worker; pending evaluations reject. Idempotent. */
  close(): void;
}

/** Options of a {@link WorkerEvaluator}. */
export interface WorkerEvaluatorOptions {
  /** An evaluation taking longer fails (and the worker is replaced). Default 600000 ms. */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly resolve: (r: RoundEvalResult) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Evaluates a program's adapters in a worker thread. */
export class WorkerEvaluator implements RoundEvaluator {
  private worker?: Worker;
  private readyPromise?: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly data: EvalWorkerData;
  private readonly timeoutMs: number;

  /** Start the worker for `spec` (which must have an `eval` block) over a base with config `baseConfig`. */
  constructor(spec: ProgramSpec, baseConfig: LlamaConfig, options: WorkerEvaluatorOptions = {}) {
    const e = spec?.eval;
    if (!e) throw new TypeError('WorkerEvaluator: spec must be a program with an eval block');
    this.timeoutMs = options.timeoutMs ?? 600_000;
    if (!(this.timeoutMs > 0)) throw new RangeError(`WorkerEvaluator: options.timeoutMs must be positive, got ${this.timeoutMs}`);
    this.data = {
      basePath: spec.basePath,
      tokenizerPath: spec.tokenizerPath,
      quant: spec.training.quant,
      lora: spec.lora,
      textPath: e.textPath,
      format: e.format,
      maxTokens: e.maxTokens,
      context: Math.min(e.context ?? spec.training.seqLen ?? 64, baseConfig.seqLen),
      baseTextPath: e.baseTextPath,
    };
    this.start();
  }

  private start(): Promise<void> {
    const worker = new Worker(new URL('./eval-worker.js', import.meta.url), { workerData: this.data });
    // a worker never keeps the process alive on its own
    worker.unref();
    this.worker = worker;
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: EvalReply) => {
        if (m.type === 'ready') return resolve();
        if (m.type === 'error' && m.id === -1) return reject(new Error(`server evaluation cannot start: ${m.message}`));
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.type === 'error') p.reject(new Error(m.message));
        else if (m.type === 'result') p.resolve({ heldoutLoss: m.heldoutLoss, heldoutTokens: m.heldoutTokens, ...(m.baseTextLoss === undefined ? {} : { baseTextLoss: m.baseTextLoss }) });
      });
      const died = (why: string): void => {
        if (this.worker === worker) this.worker = undefined;
        reject(new Error(why));
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new Error(why));
          this.pending.delete(id);
        }
      };
      worker.on('error', (e) => died(`the evaluation worker failed: ${e.message}`));
      worker.on('exit', (code) => died(`the evaluation worker exited (code ${code})`));
    });
    ready.catch(() => undefined);
    this.readyPromise = ready;
    return ready;
  }

  /** Resolves once the worker has loaded the base and tokenized the data; rejects with why it could not. */
  ready(): Promise<void> {
    return this.readyPromise ?? this.start();
  }

  evaluate(global: Float32Array, round: number): Promise<RoundEvalResult> {
    if (!(global instanceof Float32Array)) return Promise.reject(new TypeError('WorkerEvaluator.evaluate: global must be a Float32Array'));
    if (this.closed) return Promise.reject(new Error('WorkerEvaluator.evaluate: the evaluator is closed'));
    const values = global.slice();
    const run = async (): Promise<RoundEvalResult> => {
      if (this.closed) throw new Error('the evaluator was closed');
      if (!this.worker) this.start();
      await this.readyPromise;
      const worker = this.worker as Worker;
      const id = this.nextId++;
      return new Promise<RoundEvalResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`the evaluation of round ${round} took longer than ${this.timeoutMs} ms`));
          // the worker is busy with it: replace it
          if (this.worker === worker) this.worker = undefined;
          void worker.terminate();
        }, this.timeoutMs);
        this.pending.set(id, { resolve, reject, timer });
        worker.postMessage({ id, flat: values }, [values.buffer]);
      });
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error('the evaluator was closed'));
      this.pending.delete(id);
    }
    void w?.terminate();
  }
}
