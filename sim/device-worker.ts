/**
 * Worker-thread entry hosting some simulated devices: each is the real Device library against the
 * real coordinator over loopback gRPC, exactly as a deployment runs it (devices in one worker
 * interleave between training steps); attackers are {@link SignFlippingDevice}s. Progress goes to the parent as messages tagged with the
 * device's index; a "stop" message aborts every run.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Device } from '../client/index.js';
import { SignFlippingDevice } from './attacker-device.js';

/** One device a worker hosts. */
export interface DeviceWorkerData {
  readonly index: number;
  readonly address: string;
  readonly programId: string;
  readonly dataDir: string;
  readonly enrolmentToken: string;
  readonly text: string;
  readonly label: string;
  readonly seed: number;
  /** > 0: this device attacks, sending −attackScale × its honest update (robustness experiments). */
  readonly attackScale: number;
}

const port = parentPort;
if (port) {
  const list = workerData as readonly DeviceWorkerData[];
  const ac = new AbortController();
  port.on('message', (m: unknown) => {
    if (m === 'stop') ac.abort();
  });
  Promise.all(
    list.map(async (d) => {
      const options = { address: d.address, programId: d.programId, dataDir: d.dataDir, enrolmentToken: d.enrolmentToken, text: [d.text], label: d.label, seed: d.seed, maxWaitMs: 250 };
      const device = d.attackScale > 0 ? new SignFlippingDevice(options, d.attackScale) : new Device(options);
      device.progress$.subscribe((event) => port.postMessage({ type: 'event', index: d.index, event }));
      try {
        const summary = await device.run(ac.signal);
        port.postMessage({ type: 'summary', index: d.index, summary });
      } catch (e) {
        port.postMessage({ type: 'error', index: d.index, message: (e as Error).message ?? String(e) });
      } finally {
        device.close();
      }
    }),
  ).finally(() => port.close());
}
