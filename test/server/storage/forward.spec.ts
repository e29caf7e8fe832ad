/**
 * Forwarded requests (sql-forward.ts) on both engines, with two pools racing on PostgreSQL: a row
 * is taken by exactly one replica however many try at once; only its taker may answer it, once;
 * a row past its deadline is nobody's; the answer reads back as written; purge and delete remove rows;
 * on PostgreSQL a request and its answer are each NOTIFYed to listeners on other connections.
 */
import assert from 'node:assert/strict';
import { openStateStore, type ForwardNotice, type StateStore } from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

const row = (id: string, deadlineMs: number) => ({ id, programId: 'p', method: 'SecAgg', deviceId: 'd1', request: Uint8Array.from([1, 2, 3]), payload: new Uint8Array(0), fromReplica: 'f', deadlineMs });

describeEngines('server/storage forwarded requests', (engine) => {
  let a: StateStore;
  let b: StateStore;
  before(async () => {
    const location = await engine.location();
    a = await openStateStore(location, { poolSize: 4 });
    b = engine.name === 'postgres' ? await openStateStore(location, { poolSize: 4 }) : a;
  });
  after(async () => {
    await a.close();
    if (b !== a) await b.close();
  });

  it('is taken once, answered once by its taker, and read back as written', async () => {
    const heard: ForwardNotice[] = [];
    let heardBoth!: () => void;
    const both = new Promise<void>((resolve) => (heardBoth = resolve));
    const stop = await b.onForward((n) => {
      if (heard.push(n) === 2) heardBoth();
    });
    await a.forwardRequest(row('q1', Date.now() + 60_000));
    const takes = await Promise.all([a, b, a, b, a, b].map((s, i) => s.takeForwarded('q1', `r${i}`)));
    const winners = takes.filter((t) => t !== undefined);
    assert.equal(winners.length, 1);
    const taker = `r${takes.findIndex((t) => t !== undefined)}`;
    assert.deepEqual([...(winners[0]?.request ?? [])], [1, 2, 3]);
    assert.equal(winners[0]?.deviceId, 'd1');
    assert.equal(await a.forwardedAnswer('q1'), undefined, 'no answer before it is written');
    assert.equal(await b.answerForwarded('q1', taker === 'r0' ? 'r1' : 'r0', { code: 0, details: '' }), false, 'another replica may not answer it');
    assert.equal(await b.answerForwarded('q1', taker, { code: 9, details: 'a sentence' }), true);
    assert.equal(await b.answerForwarded('q1', taker, { code: 0, details: '', response: new Uint8Array([7]) }), false, 'answered once');
    assert.deepEqual(await a.forwardedAnswer('q1'), { code: 9, details: 'a sentence', response: undefined });
    assert.deepEqual(await a.untakenForwarded(['p']), []);
    if (engine.name === 'postgres') {
      await both;
      assert.deepEqual(heard, [{ kind: 'request', id: 'q1', programId: 'p' }, { kind: 'answer', id: 'q1' }]);
    }
    await stop();
    assert.equal(await a.deleteForwarded('q1'), true);
    assert.equal(await a.forwardedAnswer('q1'), undefined);
  });

  it('a row past its deadline is nobody\'s, and purged', async () => {
    const now = Date.now();
    await a.forwardRequest(row('late', now - 1));
    await a.forwardRequest(row('open', now + 60_000));
    assert.equal(await b.takeForwarded('late', 'r'), undefined);
    assert.deepEqual(await b.untakenForwarded(['p', 'other']), [{ id: 'open', programId: 'p' }]);
    assert.deepEqual(await b.untakenForwarded([]), []);
    assert.equal(await a.purgeForwarded(now), 1);
    assert.equal(await a.deleteForwarded('open'), true);
  });
});
