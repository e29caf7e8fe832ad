/**
 * The demo (`npm run demo`): five partner domains — Oz, Shakespeare, Moby-Dick, State of the
 * Union speeches, Brown corpus genres — each held by two devices with their own non-IID text,
 * federated by a real coordinator over loopback gRPC into one LoRA adapter for the shared,
 * int8-quantized stories260K base. Prints a table after each round, then the comparison with
 * base only, local-only and centralized LoRA; writes the adapter, an SVG plot and a JSON summary
 * to out/demo/. Takes the same flags as `fedtune simulate` (e.g. `npm run demo -- --rounds 2`).
 */
import { simulationFlags } from '../cli/simulate.js';
import { runSimulation } from '../sim/index.js';

const { options, jsonSummary } = simulationFlags(process.argv.slice(2));
await runSimulation({ ...options, outDir: options.outDir ?? 'out/demo' }).then((s) => {
  if (jsonSummary) return import('node:fs').then((fs) => fs.writeFileSync(jsonSummary, `${JSON.stringify(s, null, 1)}\n`));
  return undefined;
});
