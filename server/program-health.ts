/**
 * Per-program health: besides '' (the whole server) and `fedtune.v1.Coordinator`, the health
 * service reports one service per program, named `fedtune.v1.Coordinator/<program id>`: SERVING
 * while the program runs rounds, NOT_SERVING once it has completed them or exhausted its privacy
 * budget (devices get no more work), and — like every service — at shutdown. Watchers of a
 * program's name hear each change.
 */
import type { Coordinator } from './coordinator.js';
import type { HealthService } from './health.js';

/** The health service name of a program. */
export function programHealthName(programId: string): string {
  if (typeof programId !== 'string' || programId === '') throw new TypeError('programHealthName: programId must be a program id');
  return `fedtune.v1.Coordinator/${programId}`;
}

/** Register every program of `c` with `health` and follow its runner; returns a function that stops following. */
export function trackProgramHealth(health: HealthService, c: Coordinator): () => void {
  const subs = c.programIds().map((id) => {
    const runner = c.program(id).runner;
    const name = programHealthName(id);
    health.setStatus(name, runner.done ? 'NOT_SERVING' : 'SERVING');
    // the round stream completes when the program is done (or stopped at shutdown)
    return runner.events$.subscribe({ complete: () => health.setStatus(name, 'NOT_SERVING') });
  });
  return () => {
    for (const s of subs) s.unsubscribe();
  };
}
