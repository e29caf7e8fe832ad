/**
 * One status line for a simulated fleet — round, devices done of those sampled, dropouts, ε so
 * far, the last held-out loss, updates per second — redrawn in place on a terminal (at most a
 * few times a second), silent off a terminal (logs then hold only the per-round lines).
 */

/** What the line shows. */
export interface FleetStatus {
  round: number;
  rounds: number;
  sampled: number;
  done: number;
  dropped: number;
  epsilon?: number;
  heldOutLoss?: number;
  updatesPerSecond?: number;
  phase: string;
}

/** The fleet's status line. */
export class FleetProgress {
  private readonly live: boolean;
  private timer?: NodeJS.Timeout;
  private shown = false;
  /** The current status; mutate it, it is redrawn on the next tick. */
  readonly status: FleetStatus;

  constructor(rounds: number, enabled = true, private readonly out: NodeJS.WriteStream = process.stdout) {
    this.status = { round: 0, rounds, sampled: 0, done: 0, dropped: 0, phase: 'starting' };
    this.live = enabled && Boolean(out.isTTY);
    if (this.live) this.timer = setInterval(() => this.draw(), 250);
  }

  /** The line as text. */
  line(): string {
    const s = this.status;
    const frac = s.sampled ? (s.done + s.dropped) / s.sampled : 0;
    const bar = '#'.repeat(Math.round(frac * 24)).padEnd(24, '.');
    const parts = [`round ${s.round}/${s.rounds}`, `[${bar}] ${s.done + s.dropped}/${s.sampled} devices (${s.dropped} dropped)`];
    if (s.epsilon !== undefined) parts.push(`ε ${s.epsilon.toFixed(2)}`);
    if (s.heldOutLoss !== undefined) parts.push(`held-out ${s.heldOutLoss.toFixed(3)}`);
    if (s.updatesPerSecond !== undefined) parts.push(`${s.updatesPerSecond.toFixed(1)} upd/s`);
    parts.push(s.phase);
    return parts.join('  ');
  }

  private draw(): void {
    this.out.write(`\r\x1b[2K${this.line()}`);
    this.shown = true;
  }

  /** Print a line above the status line. */
  note(msg: string, log: (l: string) => void): void {
    if (this.live && this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
    log(msg);
  }

  /** Stop redrawing and erase the line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.live && this.shown) this.out.write('\r\x1b[2K');
  }
}
