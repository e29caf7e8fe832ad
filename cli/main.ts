#!/usr/bin/env node
/** The `fedtune` command: thin wrappers over the libraries. */
import { terminateWasmThreads } from '../model/index.js';
import { CliError } from './args.js';
import { coordinatorCommand, COORDINATOR_USAGE } from './coordinator.js';
import { deviceCommand, DEVICE_USAGE } from './device.js';
import { simulateCommand, SIMULATE_USAGE } from './simulate.js';
import { evalCommand, EVAL_USAGE } from './eval.js';
import { generateCommand, GENERATE_USAGE } from './generate.js';
import { privacyCommand, PRIVACY_USAGE } from './privacy.js';
import { trainCommand, TRAIN_USAGE } from './train.js';

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  generate: generateCommand,
  eval: evalCommand,
  train: trainCommand,
  privacy: privacyCommand,
  coordinator: coordinatorCommand,
  device: deviceCommand,
  simulate: simulateCommand,
};

const USAGE = `usage:
  ${GENERATE_USAGE}
  ${EVAL_USAGE}
  ${TRAIN_USAGE}
  ${PRIVACY_USAGE}
  ${COORDINATOR_USAGE}
  ${DEVICE_USAGE}
  ${SIMULATE_USAGE}
Defaults: --base/--tokenizer from FEDTUNE_MODEL_DIR or ../shared/models/stories260K; --backend from FEDTUNE_BACKEND or auto.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 2;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    process.stderr.write(`fedtune: unknown command "${cmd}"; try one of ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    await run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`fedtune ${cmd}: ${err.message}\n`);
    if (process.env.FEDTUNE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return e instanceof CliError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  terminateWasmThreads(); // wasm worker threads, if FEDTUNE_WASM_THREADS started any
  process.exitCode = code;
});
