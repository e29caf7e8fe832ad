/**
 * One coordinator replica of bench/replicas.ts, in a process of its own so its CPU time and RSS
 * are its alone. Forked with its settings as JSON in argv[2]; over IPC:
 *
 *   child → {t:'listening', address}
 *   parent → {t:'stats'}     child → {t:'stats', cpuS, rssMiB, maxRssMiB}
 *   parent → {t:'exit'}
 */
import { programSpec, startCoordinator } from '../server/index.js';

/** What the parent tells a replica. */
export interface ReplicaSettings {
  readonly dataDir: string;
  readonly store: string;
  readonly replicaId: string;
  /** The program, as programSpec takes it. */
  readonly program: Record<string, unknown>;
}

async function main(s: ReplicaSettings): Promise<void> {
  const running = await startCoordinator({ dataDir: s.dataDir, programs: [programSpec(s.program)], store: s.store, blobs: 'postgres', replicaId: s.replicaId, port: 0 });
  process.on('message', (m: { t: string }) => {
    if (m.t === 'stats') {
      const cpu = process.cpuUsage();
      process.send?.({ t: 'stats', cpuS: (cpu.user + cpu.system) / 1e6, rssMiB: process.memoryUsage().rss / 2 ** 20, maxRssMiB: process.resourceUsage().maxRSS / 1024 });
    } else if (m.t === 'exit') {
      running.shutdown(2000).finally(() => process.exit(0));
    }
  });
  process.send?.({ t: 'listening', address: running.address });
}

if (process.send && process.argv[2]) await main(JSON.parse(process.argv[2]) as ReplicaSettings);
