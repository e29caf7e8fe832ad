/**
 * The coordinator's pino logs (server/log.ts, log-pretty.ts): one JSON object per line with an ISO
 * time and a level word, levels filtered by --log-level, child loggers binding program and round,
 * the pretty form for a terminal — and a real coordinator whose round lines all carry their
 * program, round number and round id.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { filter, firstValueFrom } from 'rxjs';
import { startCoordinator } from '../../server/index.js';
import { childLog, createLogger, type LogSink } from '../../server/log.js';
import { prettyLine } from '../../server/log-pretty.js';
import { smallProgram } from './fixtures.js';

/** A writable that keeps what it is given; `isTTY` as asked. */
function capture(isTTY = false): Writable & { isTTY: boolean; text(): string } {
  let out = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY: boolean; text(): string };
  w.isTTY = isTTY;
  w.text = () => out;
  return w;
}

const lines = (text: string): Record<string, unknown>[] => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('server: structured logs (pino)', function () {
  this.timeout(20_000);

  it('one JSON object per line: ISO time, level word, msg and fields; the level filters', () => {
    const out = capture();
    const { log } = createLogger({ level: 'warn', stream: out });
    log('listening', { port: 7070 });
    log('round failed', { program: 'oz', reason: 'too few' });
    log('uncaught exception (kept serving)', { error: 'boom' });
    log('anything', { level: 'error', x: 1 });
    const got = lines(out.text());
    assert.deepEqual(got.map((l) => [l.level, l.msg]), [['warn', 'round failed'], ['error', 'uncaught exception (kept serving)'], ['error', 'anything']]);
    for (const l of got) assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(got[0].reason, 'too few');
    assert.equal(got[2].x, 1);
    const info = capture();
    createLogger({ level: 'info', stream: info }).log('listening', { port: 7070 });
    assert.deepEqual(lines(info.text()).map((l) => [l.level, l.msg, l.port]), [['info', 'listening', 7070]]);
  });

  it('child loggers bind fields to every line (pino children, or a wrapper for a plain sink)', () => {
    const out = capture();
    const { log } = createLogger({ stream: out });
    const round = childLog(log, { program: 'oz', round: 3, roundId: 'oz.r3.a1' }) as LogSink;
    round('round open', { attempt: 1 });
    childLog(round, { phase: 'x' })?.('deeper');
    // a field already bound with the same value is written once (pino would repeat the key)
    round('again', { roundId: 'oz.r3.a1', round: 4 });
    assert.equal((out.text().trim().split('\n').pop()?.match(/"roundId"/g) ?? []).length, 1);
    assert.deepEqual(
      lines(out.text()).map(({ time: _t, ...rest }) => rest),
      [
        { level: 'info', program: 'oz', round: 3, roundId: 'oz.r3.a1', attempt: 1, msg: 'round open' },
        { level: 'info', program: 'oz', round: 3, roundId: 'oz.r3.a1', phase: 'x', msg: 'deeper' },
        { level: 'info', program: 'oz', round: 4, roundId: 'oz.r3.a1', msg: 'again' },
      ],
    );
    const seen: unknown[] = [];
    const plain: LogSink = (msg, fields) => seen.push({ msg, ...fields });
    childLog(plain, { program: 'p' })?.('m', { a: 1 });
    assert.deepEqual(seen, [{ msg: 'm', program: 'p', a: 1 }]);
    assert.equal(childLog(undefined, { a: 1 }), undefined);
  });

  it('pretty output on a terminal (format auto), JSON elsewhere; the pretty line format', () => {
    const tty = capture(true);
    createLogger({ stream: tty }).log('round open', { program: 'oz', roundId: 'oz.r1.a1' });
    assert.ok(!tty.text().startsWith('{'));
    assert.match(tty.text(), /\x1b\[/, 'coloured on a terminal');
    assert.match(tty.text().replace(/\x1b\[[0-9;]*m/g, ''), /^\d\d:\d\d:\d\d\.\d{3} INFO  round open program=oz roundId=oz\.r1\.a1\n$/);
    const forced = capture(false);
    createLogger({ stream: forced, format: 'pretty' }).log('x');
    assert.doesNotMatch(forced.text(), /\x1b\[/, 'no colours when not a terminal');
    assert.equal(
      prettyLine('{"level":"warn","time":"2026-01-02T03:04:05.678Z","program":"oz","reason":"two words","n":2,"o":{"a":1},"msg":"round failed"}'),
      '03:04:05.678 WARN  round failed program=oz reason="two words" n=2 o={"a":1}\n',
    );
    assert.equal(prettyLine('not json'), 'not json\n');
    assert.throws(() => createLogger({ level: 'loud' as never }), /createLogger: level must be one of/);
    assert.throws(() => createLogger({ format: 'xml' as never }), RangeError);
  });

  it('a real coordinator: every line of a round carries program, round and round id', async () => {
    const out = capture();
    const { log } = createLogger({ stream: out });
    const running = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-log-')), port: 0, log, programs: [smallProgram('oz', { roundDeadlineMs: 150, retryDelayMs: 50 })] });
    try {
      // no device comes: the round fails at its deadline (and is retried)
      await firstValueFrom(running.coordinator.program('oz').runner.watch(0).pipe(filter((e) => e.state === 'FAILED')));
    } finally {
      await running.shutdown(500);
    }
    const got = lines(out.text());
    const round = got.filter((l) => l.msg === 'round open' || l.msg === 'round failed');
    assert.ok(round.filter((l) => l.msg === 'round failed').length >= 1, JSON.stringify(got));
    for (const l of round) {
      assert.equal(l.program, 'oz');
      assert.equal(l.round, 1);
      assert.match(String(l.roundId), /^oz\.r1\.a\d+$/);
    }
    assert.equal(round.find((l) => l.msg === 'round failed')?.level, 'warn');
  });
});
