/**
 * Per-program health: besides '' (the whole server) and `fedtune.v1.Coordinator`, the health
 * service reports one service per program, named `fedtune.v1.Coordinator/<program id>`: SERVING
 * while the program runs rounds here, NOT_SERVING once it has completed them or exhausted its
 * privacy budget (devices get no more work), and — like every service — at shutdown. On
 * PostgreSQL a program whose rounds every replica serves (server/shared-intake.ts) is SERVING on
 * every replica (a balancer spreads its devices over all of them); one whose rounds stay on their
 * driver (secure aggregation, fixed-cohort) is NOT_SERVING where another replica drives it.
 * Watchers of a program's name hear each change.
 */
import type { Coordinator } from './coordinator.js';
import type { HealthService } from './health.js';

/** The health service name of a program. */
export function programHealthName(programId: string): string {
  if (typeof programId !== 'string' || programId === '') throw new TypeError('programHealthName: programId must be a program id');
  return `fedtune.v1.Coordinator/${programId}`;
}

/** What per-program health follows: the programs, and (with leases) which of them this process drives — all of them without. */
export type ProgramHealthSource = Pick<Coordinator, 'programIds' | 'program'> & Partial<Pick<Coordinator, 'drives' | 'serves' | 'onDrivingChange'>>;

/** Register every program of `c` with `health` and follow its runner; returns a function that stops following. */
export function trackProgramHealth(health: HealthService, c: ProgramHealthSource): () => void {
  // a replica serves a program where it drives it, and everywhere when its rounds are shared
  const drives = (id: string): boolean => c.serves?.(id) ?? c.drives?.(id) ?? true;
  const subs = c.programIds().map((id) => {
    const runner = c.program(id).runner;
    const name = programHealthName(id);
    let over = false;
    const set = (): void => health.setStatus(name, !over && !runner.done && drives(id) ? 'SERVING' : 'NOT_SERVING');
    set();
    // the round stream completes when the program is done (or stopped at shutdown)
    return runner.events$.subscribe({
      complete: () => {
        over = true;
        set();
      },
    });
  });
  const stop =
    c.onDrivingChange?.(() => {
      for (const id of c.programIds()) if (!c.program(id).runner.done) health.setStatus(programHealthName(id), drives(id) ? 'SERVING' : 'NOT_SERVING');
    }) ?? ((): boolean => true);
  return () => {
    stop();
    for (const s of subs) s.unsubscribe();
  };
}
