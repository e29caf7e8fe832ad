/**
 * `fedtune config check FILE`: validate a coordinator config file with the same schema the
 * coordinator uses (server/config-schema.ts), without starting anything. Valid: one summary line
 * per program on stdout, exit 0. Invalid: every problem on stderr, one per line, each naming its
 * path (`programs[0].training.stesp: unknown key; did you mean "steps"?`), exit 1.
 */
import { basename } from 'node:path';
import { checkProgramsFile, type ProgramSpec } from '../server/program-config.js';
import { CliError } from './args.js';

/** Usage text. */
export const CONFIG_USAGE = 'fedtune config check FILE (validate a coordinator config: one line per program, or every problem with its path)';

/** One line describing a valid program: what it trains, how rounds run, how updates are protected. */
export function programSummary(p: ProgramSpec): string {
  const base = p.tokenizerPath ? `${basename(p.basePath)} + ${basename(p.tokenizerPath)}` : basename(p.basePath);
  const privacy = p.dp.mode === 'none' ? 'no DP' : `${p.dp.mode} DP (C ${p.dp.clipNorm}${p.dp.adaptiveClip ? ' adaptive' : ''}, z ${p.dp.noiseMultiplier}, δ ${p.dp.delta}, ε budget ${Number.isFinite(p.dp.epsilonBudget) ? p.dp.epsilonBudget : 'none'}, population ${p.dp.population})`;
  const { scheme, rate, selectionMs } = p.sampling;
  const sampling = scheme === 'first-come' ? 'first-come selection' : scheme === 'poisson' ? `Poisson sampling at q ${rate.toPrecision(3)} over ${selectionMs} ms` : `fixed-cohort draw after ${selectionMs} ms`;
  const agg = [p.aggregation, p.serverOptimizer.kind !== 'fedavg' ? p.serverOptimizer.kind : '', p.robust ? p.robust.rule : '', p.compression !== 'none' ? p.compression : '', p.secagg ? 'secagg' : ''].filter(Boolean).join('+');
  return `${p.id}: base ${base}; LoRA rank ${p.lora.rank} on ${p.lora.targets.join(',')}; ${p.training.dataFormat} data, ${p.training.steps} steps × batch ${p.training.batchSize} × ${p.training.seqLen} tokens; ${p.rounds} rounds of cohort ${p.cohortSize} (≥ ${p.minUpdates} updates, ≥ ${p.minContributors} contributors), ${sampling}; ${agg}; ${privacy}; releases signed by ${p.release.signing}`;
}

/** Run the command. */
export async function configCommand(argv: string[]): Promise<void> {
  const [sub, file, ...rest] = argv;
  if (sub !== 'check') throw new CliError(sub === undefined ? `a subcommand is required: ${CONFIG_USAGE}` : `unknown subcommand "${sub}"; usage: ${CONFIG_USAGE}`);
  if (file === undefined || file === '' || file.startsWith('-')) throw new CliError(`config check needs the config FILE: ${CONFIG_USAGE}`);
  if (rest.length) throw new CliError(`config check takes one FILE, got also ${rest.join(' ')}`);
  const c = checkProgramsFile(file);
  if (!c.ok) {
    for (const line of c.issues) process.stderr.write(`${line}\n`);
    throw new Error(`${file}: ${c.issues.length} problem${c.issues.length === 1 ? '' : 's'}`);
  }
  for (const p of c.programs) process.stdout.write(`${programSummary(p)}\n`);
}
