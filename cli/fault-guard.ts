/**
 * Process-level fault handlers for a long-running command (`fedtune coordinator`): an exception
 * nothing caught ('uncaughtException') or a rejected promise nobody handled ('unhandledRejection')
 * becomes one structured log line, and the process keeps serving.
 *
 * Why carrying on is safe for the coordinator: every RPC handler answers exactly once through
 * toStatus(), round timers and SecAgg phase steps catch their own failures (the round fails with
 * a reason), and every durable change is one SQLite transaction. An exception that still escapes
 * therefore leaves at most one step of one call or timer unfinished — a round may stall until its
 * deadline closes it — never a half-written store or a published adapter that is wrong. What is
 * not safe is a process that faults again and again (a broken invariant, a database gone): after
 * `maxFaults` faults within `windowMs` the guard calls `onStorm`, and the CLI shuts down
 * gracefully and exits 1 so a supervisor restarts it from the store.
 */

/** Options of {@link installFaultGuard}. */
export interface FaultGuardOptions {
  /** Structured log sink. */
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Faults tolerated within `windowMs` before `onStorm`. Default 10. */
  readonly maxFaults?: number;
  /** Window of the fault count, ms. Default 60000. */
  readonly windowMs?: number;
  /** Called once when faults exceed `maxFaults` within `windowMs`. */
  readonly onStorm: (faults: number) => void;
}

function describeFault(e: unknown): Record<string, unknown> {
  if (e instanceof Error) return { error: e.message, name: e.name, stack: e.stack };
  return { error: String(e) };
}

/** Install the handlers; returns a function that removes them. */
export function installFaultGuard(o: FaultGuardOptions): () => void {
  if (typeof o?.log !== 'function' || typeof o.onStorm !== 'function') throw new TypeError('installFaultGuard: options.log and options.onStorm must be functions');
  const maxFaults = o.maxFaults ?? 10;
  const windowMs = o.windowMs ?? 60_000;
  if (!Number.isInteger(maxFaults) || maxFaults < 1) throw new RangeError(`installFaultGuard: options.maxFaults must be a positive integer, got ${maxFaults}`);
  if (!(windowMs > 0)) throw new RangeError(`installFaultGuard: options.windowMs must be positive, got ${windowMs}`);
  let times: number[] = [];
  let stormed = false;
  const fault = (kind: string, e: unknown, origin?: string): void => {
    const now = Date.now();
    times = [...times.filter((t) => now - t < windowMs), now];
    try {
      o.log(kind === 'uncaughtException' ? 'uncaught exception (kept serving)' : 'unhandled rejection (kept serving)', { kind, origin, ...describeFault(e), faultsInWindow: times.length, windowMs });
    } catch {
      // a log sink that throws must not turn a fault into a crash
    }
    if (times.length > maxFaults && !stormed) {
      stormed = true;
      o.onStorm(times.length);
    }
  };
  const onException = (e: Error, origin: string): void => fault('uncaughtException', e, origin);
  const onRejection = (reason: unknown): void => fault('unhandledRejection', reason);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
