/** `fedtune inspect`: what a base is — architecture, tensors, tokenizer, chat format, identity — from its headers alone. */
import { parse } from './args.js';
import { baseFiles } from './base-files.js';
import { baseReport, type BaseReport } from './base-report.js';

/** Usage text. */
export const INSPECT_USAGE = `fedtune inspect --base FILE|DIR [--json] [--tokenizer FILE (llama2.c base)]`;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

/** The report as aligned text lines. */
export function reportText(r: BaseReport): string {
  const t = r.tokenizer;
  const specials = t.specialTokens.map((s) => `${s.id} ${JSON.stringify(s.text)}`).join(', ');
  const lines: [string, string][] = [
    ['base', `${r.path} (${r.format}, ${r.sizeBytes} bytes)`],
    ['sha256', r.sha256],
    ['architecture', `${r.architecture}, ${r.parameters} parameters`],
    ['shape', `dim ${r.dim}, hidden ${r.hiddenDim}, ${r.nLayers} layers, ${r.nHeads} heads (${r.nKvHeads} kv), head_dim ${r.headDim}`],
    ['context', `${r.contextLength} tokens`],
    ['rope', `${r.rope.style}, theta ${r.rope.theta}${r.rope.freqFactors ? ', frequency factors' : ''}`],
    ['norm', `RMSNorm eps ${r.normEps}${r.qkNorm ? ', q/k norm' : ''}`],
    ['biases', r.attnBias ? 'q, k, v' : 'none'],
    ['head', r.tiedHead ? 'tied to the token embedding' : 'separate'],
    ...Object.entries(r.tensorTypes).map(([k, s]): [string, string] => [`tensors ${k}`, `${s.tensors} tensors, ${s.bytes} bytes (${mib(s.bytes)})`]),
    ['tokenizer', `${t.kind}, ${t.vocabSize} tokens`],
    ['bos/eos', `BOS ${t.bosId}, EOS ${t.eosId}, start ${t.startId}, ${t.addBos ? 'adds BOS' : 'no BOS added'}`],
    ['specials', specials === '' ? 'none' : specials],
    ['chat', r.chat ? `${r.chat.format} (from the ${r.chat.source})${r.chat.defaultSystem !== undefined ? `, default system ${JSON.stringify(r.chat.defaultSystem)}` : ''}` : 'none'],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** Run the command. */
export async function inspectCommand(argv: string[]): Promise<void> {
  const v = parse(argv, { base: { type: 'string' }, tokenizer: { type: 'string' }, json: { type: 'boolean' } });
  const r = baseReport(baseFiles(v));
  process.stdout.write(v.json ? `${JSON.stringify(r)}\n` : `${reportText(r)}\n`);
}
