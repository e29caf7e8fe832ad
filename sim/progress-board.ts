/**
 * Progress bars for a fleet of devices: one line per device (round, training step, loss, what it
 * is doing), redrawn in place on a terminal at most a few times a second. Off a terminal it stays
 * silent, so logs hold only the round tables.
 */
import type { DeviceEvent } from '../client/index.js';

interface Line {
  round: number;
  step: number;
  total: number;
  loss: number;
  status: string;
}

/** The board. */
export class ProgressBoard {
  private readonly lines: Line[];
  private drawn = 0;
  private timer?: NodeJS.Timeout;
  private readonly live: boolean;

  constructor(
    private readonly names: readonly string[],
    private readonly rounds: number,
    enabled = true,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {
    this.lines = names.map(() => ({ round: 0, step: 0, total: 0, loss: Number.NaN, status: 'starting' }));
    this.live = enabled && Boolean(out.isTTY);
    if (this.live) this.timer = setInterval(() => this.draw(), 300);
  }

  /** Fold a device event into its line. */
  update(i: number, e: DeviceEvent): void {
    const l = this.lines[i];
    if (!l) return;
    switch (e.kind) {
      case 'training':
        if (e.step === 1) l.round++;
        l.step = e.step;
        l.total = e.totalSteps;
        l.loss = e.loss;
        l.status = 'training';
        break;
      case 'uploaded':
        l.status = `sent ${(e.bytes / 1024).toFixed(0)} KiB`;
        break;
      case 'waiting':
        l.status = 'waiting';
        break;
      case 'replay':
        l.status = `sampled ${e.tokens} replay tokens`;
        break;
      case 'downloaded':
        l.status = `got ${e.what}`;
        break;
      case 'rejected':
        l.status = `rejected: ${e.details}`;
        break;
      case 'done':
        l.status = 'done';
        break;
      default:
        break;
    }
  }

  /** A message above the board. */
  note(msg: string): void {
    this.clear();
    this.out.write(`${msg}\n`);
  }

  /** Erase the board (before printing something else). */
  clear(): void {
    if (!this.live || this.drawn === 0) return;
    this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private draw(): void {
    this.clear();
    const width = Math.max(...this.names.map((n) => n.length));
    const text = this.lines.map((l, i) => {
      const frac = l.total ? l.step / l.total : 0;
      const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
      const loss = Number.isFinite(l.loss) ? l.loss.toFixed(3) : '  -  ';
      return `${this.names[i].padEnd(width)}  round ${Math.min(l.round, this.rounds)}/${this.rounds} [${bar}] loss ${loss}  ${l.status}`;
    });
    this.out.write(`${text.join('\n')}\n`);
    this.drawn = text.length;
  }

  /** Stop redrawing and erase the board. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }
}
