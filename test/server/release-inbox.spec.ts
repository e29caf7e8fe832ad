/**
 * Hostile entries dropped into a running coordinator's release inbox (`<data>/releases/inbox/`):
 * a directory, a FIFO, links to a device and to a file outside, an oversized file, non-JSON, a
 * malformed release, a release for no program, a replayed signed release and a forged rollback.
 * Each is refused (moved to refused/ with a sentence), none blocks the others or the event loop,
 * and the program's published releases do not change. The FIFO and /dev/zero cases run in a child
 * process with a deadline, since a blocking read there would freeze the process reading them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { releaseFileText } from '../../proto/release.js';
import { INBOX_DIR, MAX_INBOX_FILE_BYTES, readInbox, RELEASES_DIR, startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram } from './fixtures.js';

const PROGRAM = 'inbox-attack';
const here = dirname(fileURLToPath(import.meta.url));

describe('server: hostile release inbox entries are refused without stalling the coordinator', function () {
  this.timeout(20_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'fedtune-inbox-'));
  const inbox = join(dataDir, RELEASES_DIR, INBOX_DIR);
  let running: RunningCoordinator;

  before(async () => {
    running = await startCoordinator({ dataDir, port: 0, releaseInboxPollMs: 60_000, programs: [smallProgram(PROGRAM, { rounds: 1 })] });
  });
  after(async () => {
    await running?.shutdown(500);
  });

  it('a FIFO and a link to /dev/zero are refused at once, not read (child process, 10 s deadline)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-inbox-child-'));
    const box = join(dir, RELEASES_DIR, INBOX_DIR);
    mkdirSync(box, { recursive: true });
    execFileSync('mkfifo', [join(box, 'fifo.json')]);
    symlinkSync('/dev/zero', join(box, 'zero.json'));
    const script = `import(${JSON.stringify(join(here, '../../server/releases.js'))}).then((m) => console.log(JSON.stringify(m.readInbox(${JSON.stringify(dir)}))))`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
    const got = JSON.parse(out) as { name: string; problem?: string }[];
    assert.deepEqual(got.map((f) => f.name), ['fifo.json', 'zero.json']);
    assert.match(got[0].problem ?? '', /fifo\.json is a FIFO, not a regular file/);
    assert.match(got[1].problem ?? '', /zero\.json is a symbolic link, not a regular file/);
  });

  it('every hostile entry goes to refused/ with its sentence; published releases are unchanged', async () => {
    const c = running.coordinator;
    const before = (await c.store.releases(PROGRAM)).map((r) => releaseFileText(r));
    assert.ok(before.length >= 1, 'the program has its first release');
    const first = (await c.store.releases(PROGRAM))[0];
    mkdirSync(inbox, { recursive: true });
    mkdirSync(join(inbox, 'a-directory.json'));
    writeFileSync(join(dataDir, 'outside.txt'), 'secret outside the inbox');
    symlinkSync(join(dataDir, 'outside.txt'), join(inbox, 'b-link.json'));
    writeFileSync(join(inbox, 'c-huge.json'), Buffer.alloc(MAX_INBOX_FILE_BYTES + 1, 0x20));
    writeFileSync(join(inbox, 'd-not-json.json'), '\u0000\u00ff garbage');
    writeFileSync(join(inbox, 'e-shape.json'), JSON.stringify({ manifest: 42, signature: [] }));
    const manifest = JSON.parse(new TextDecoder().decode(first.manifest)) as Record<string, unknown>;
    const forged = (m: Record<string, unknown>): string => releaseFileText({ manifest: new TextEncoder().encode(JSON.stringify(m)), signature: new Uint8Array(64).fill(7) });
    writeFileSync(join(inbox, 'f-no-program.json'), forged({ ...manifest, program: 'nobody' }));
    writeFileSync(join(inbox, 'g-replay.json'), releaseFileText(first));
    writeFileSync(join(inbox, 'h-forged-rollback.json'), forged({ ...manifest, kind: 'rollback', sequence: 99 }));
    const t0 = performance.now();
    const settled = await c.processReleaseInbox();
    assert.ok(performance.now() - t0 < 5000, 'the inbox is read quickly');
    assert.deepEqual(settled.published, []);
    const names = ['a-directory.json', 'b-link.json', 'c-huge.json', 'd-not-json.json', 'e-shape.json', 'f-no-program.json', 'g-replay.json', 'h-forged-rollback.json'];
    assert.deepEqual(settled.refused, names);
    assert.deepEqual(readdirSync(inbox).filter((n) => n.endsWith('.json')), [], 'nothing is left to block the next poll');
    for (const n of names) assert.ok(readFileSync(join(inbox, 'refused', `${n}.why`), 'utf8').trim().length > 10, n);
    assert.match(readFileSync(join(inbox, 'refused', 'a-directory.json.why'), 'utf8'), /is a directory, not a regular file/);
    assert.match(readFileSync(join(inbox, 'refused', 'b-link.json.why'), 'utf8'), /is a symbolic link/);
    assert.match(readFileSync(join(inbox, 'refused', 'c-huge.json.why'), 'utf8'), new RegExp(`more than the ${MAX_INBOX_FILE_BYTES}`));
    assert.equal(readFileSync(join(dataDir, 'outside.txt'), 'utf8'), 'secret outside the inbox', 'the link target is untouched');
    assert.deepEqual((await c.store.releases(PROGRAM)).map((r) => releaseFileText(r)), before);
  });

  it('the same names dropped again are refused again, beside the first ones (no overwrite, no stall)', async () => {
    mkdirSync(join(inbox, 'a-directory.json'));
    writeFileSync(join(inbox, 'd-not-json.json'), 'still not json');
    const settled = await running.coordinator.processReleaseInbox();
    assert.deepEqual(settled.refused, ['a-directory.json', 'd-not-json.json']);
    assert.ok(existsSync(join(inbox, 'refused', 'a-directory.json.1')));
    assert.equal(readFileSync(join(inbox, 'refused', 'd-not-json.json.1'), 'utf8'), 'still not json');
    assert.deepEqual(readInbox(dataDir), []);
  });
});
