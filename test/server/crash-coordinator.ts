/**
 * Test-only entry: a coordinator that kills itself (SIGKILL) right after a round's privacy spend
 * is on disk and before its aggregate is computed, wired in through the runner's `afterLedger`
 * hook. Not part of the shipped CLI. Usage: node crash-coordinator.js CONFIG DATA_DIR; prints
 * the CLI's JSON `listening` line.
 */
import { readProgramsFile, startCoordinator } from '../../server/index.js';

const [config, dataDir] = process.argv.slice(2);
if (!config || !dataDir) throw new TypeError('crash-coordinator: usage: crash-coordinator.js CONFIG DATA_DIR');
const running = await startCoordinator({
  programs: readProgramsFile(config),
  dataDir,
  port: 0,
  runnerHooks: { afterLedger: () => process.kill(process.pid, 'SIGKILL') },
});
process.stdout.write(`${JSON.stringify({ msg: 'listening', address: running.address })}\n`);
