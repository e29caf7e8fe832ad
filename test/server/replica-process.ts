/**
 * Test-only entry: one coordinator replica on PostgreSQL, configured by FEDTUNE_TEST_REPLICA
 * (JSON: config, dataDir, store, replicaId, leaseTtlMs, and optionally killAtLedgerRound — the
 * replica kills itself (SIGKILL) right after that round's privacy spend is on disk, i.e. while it
 * aggregates the round). Its log goes to stdout as JSON lines, the first "listening" (as the CLI's).
 * Not part of the shipped CLI.
 */
import { readProgramsFile, startCoordinator } from '../../server/index.js';

interface ReplicaSpec {
  readonly config: string;
  readonly dataDir: string;
  readonly store: string;
  readonly replicaId: string;
  readonly leaseTtlMs: number;
  readonly killAtLedgerRound?: number;
}

const spec = JSON.parse(process.env.FEDTUNE_TEST_REPLICA ?? 'null') as ReplicaSpec | null;
if (!spec) throw new TypeError('replica-process: set FEDTUNE_TEST_REPLICA to the replica\'s JSON spec');
const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ ...fields, msg })}\n`);
};
const running = await startCoordinator({
  programs: readProgramsFile(spec.config),
  dataDir: spec.dataDir,
  store: spec.store,
  blobs: 'postgres',
  replicaId: spec.replicaId,
  leaseTtlMs: spec.leaseTtlMs,
  port: 0,
  log,
  runnerHooks: {
    afterLedger: (e) => {
      if (e.roundNumber !== spec.killAtLedgerRound) return;
      log('killing myself while aggregating', { round: e.roundNumber, roundId: e.roundId });
      process.kill(process.pid, 'SIGKILL');
    },
  },
});
log('listening', { address: running.address, replica: spec.replicaId });
process.once('SIGTERM', () => {
  running.shutdown(1000).then(() => process.exit(0), () => process.exit(1));
});
