#!/usr/bin/env node
/** The `fedtune` command: thin wrappers over the libraries. */
import { CliError } from './args.js';

/** A command's entry point and usage line. */
interface Command {
  readonly run: (argv: string[]) => Promise<void>;
  readonly usage: string;
}

/**
 * Each command's module loads only when it runs, so `fedtune coordinator` and `fedtune privacy`
 * never load TensorFlow.js (the coordinator aggregates Float32Arrays; it runs no model).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  generate: async () => import('./generate.js').then((m) => ({ run: m.generateCommand, usage: m.GENERATE_USAGE })),
  eval: async () => import('./eval.js').then((m) => ({ run: m.evalCommand, usage: m.EVAL_USAGE })),
  train: async () => import('./train.js').then((m) => ({ run: m.trainCommand, usage: m.TRAIN_USAGE })),
  privacy: async () => import('./privacy.js').then((m) => ({ run: m.privacyCommand, usage: m.PRIVACY_USAGE })),
  coordinator: async () => import('./coordinator.js').then((m) => ({ run: m.coordinatorCommand, usage: m.COORDINATOR_USAGE })),
  config: async () => import('./config.js').then((m) => ({ run: m.configCommand, usage: m.CONFIG_USAGE })),
  device: async () => import('./device.js').then((m) => ({ run: m.deviceCommand, usage: m.DEVICE_USAGE })),
  inspect: async () => import('./inspect.js').then((m) => ({ run: m.inspectCommand, usage: m.INSPECT_USAGE })),
  tokenize: async () => import('./tokenize.js').then((m) => ({ run: m.tokenizeCommand, usage: m.TOKENIZE_USAGE })),
  release: async () => import('./release.js').then((m) => ({ run: m.releaseCommand, usage: m.RELEASE_USAGE })),
  keys: async () => import('./keys.js').then((m) => ({ run: m.keysCommand, usage: m.KEYS_USAGE })),
  simulate: async () => import('./simulate.js').then((m) => ({ run: m.simulateCommand, usage: m.SIMULATE_USAGE })),
  export: async () => import('./export.js').then((m) => ({ run: m.exportCommand, usage: m.EXPORT_USAGE })),
  import: async () => import('./import.js').then((m) => ({ run: m.importCommand, usage: m.IMPORT_USAGE })),
  admin: async () => import('./admin.js').then((m) => ({ run: m.adminCommand, usage: m.ADMIN_USAGE })),
};

/** Commands that run a model (and so may have started wasm worker threads to stop at exit). */
const MODEL_COMMANDS = new Set(['generate', 'eval', 'train', 'device', 'simulate']);

async function usage(): Promise<string> {
  const lines = await Promise.all(Object.values(COMMANDS).map(async (load) => `  ${(await load()).usage}`));
  return `usage:
${lines.join('\n')}
Defaults: --base/--tokenizer from FEDTUNE_MODEL_DIR or ../shared/models/stories260K; --backend from FEDTUNE_BACKEND or auto.`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${await usage()}\n`);
    return cmd ? 0 : 2;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    process.stderr.write(`fedtune: unknown command "${cmd}"; try one of ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    await (await load()).run(rest);
    return 0;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    // one line, whatever the message holds (a JSON parser's excerpt, a file's text)
    process.stderr.write(`fedtune ${cmd}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (process.env.FEDTUNE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return e instanceof CliError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then(async (code) => {
  const [cmd] = process.argv.slice(2);
  if (MODEL_COMMANDS.has(cmd)) (await import('../model/ops/wasm-threads.js')).terminateWasmThreads(); // wasm worker threads, if FEDTUNE_WASM_THREADS started any
  process.exitCode = code;
});
