/**
 * The worker thread of server-side evaluation (see evaluator.ts): it opens the program's base at
 * the program's training quantization, tokenizes the held-out data once, then answers each
 * `{ id, flat }` (an adapter's flat values) with its mean loss on the held-out tokens — and on
 * the base-domain text, when the program names one. TF.js runs here, never on the event loop
 * that serves devices.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  adapterTensorsFromFlat,
  baseChatStyle,
  chatTrainingStream,
  evaluateLoss,
  initBackend,
  LoraAdapter,
  openBase,
  parseChatJsonl,
  type LoraConfig,
  type MaskedTokens,
  type QuantMode,
} from '../../model/index.js';

/** What the coordinator hands the worker. */
export interface EvalWorkerData {
  readonly basePath: string;
  readonly tokenizerPath: string;
  readonly quant: QuantMode;
  readonly lora: LoraConfig;
  readonly textPath: string;
  readonly format: 'text' | 'chat';
  readonly maxTokens: number;
  readonly context: number;
  readonly baseTextPath: string;
}

/** A request: score these flat adapter values. */
export interface EvalRequest {
  readonly id: number;
  readonly flat: Float32Array;
}

/** The worker's messages: ready (with token counts), a result, or an error (of a request, or of the start when id is -1). */
export type EvalReply =
  | { readonly type: 'ready'; readonly heldoutTokens: number; readonly baseTextTokens: number; readonly backend: string }
  | { readonly type: 'result'; readonly id: number; readonly heldoutLoss: number; readonly heldoutTokens: number; readonly baseTextLoss?: number }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('eval-worker.js runs as a worker thread (server/eval/evaluator.ts starts it)');
  const d = workerData as EvalWorkerData;
  let ready: { base: ReturnType<typeof openBase>['base']; startId: number; heldout: Int32Array | MaskedTokens; baseText?: Int32Array; context: number };
  try {
    const info = await initBackend();
    const { base, tokenizer } = openBase(d.basePath, d.quant, { tokenizerPath: d.tokenizerPath || undefined });
    const text = readFileSync(d.textPath, 'utf8');
    let heldout: Int32Array | MaskedTokens;
    if (d.format === 'chat') {
      const style = baseChatStyle(d.basePath, tokenizer);
      if (!style) throw new RangeError(`eval.format is "chat" but the base ${d.basePath} has no chat format (neither a ChatML nor a Llama 3 template or special tokens)`);
      heldout = chatTrainingStream(tokenizer, parseChatJsonl(text, d.textPath), style.format, { defaultSystem: style.defaultSystem });
    } else heldout = tokenizer.encode(text, { bos: false });
    const baseText = d.baseTextPath ? tokenizer.encode(readFileSync(d.baseTextPath, 'utf8'), { bos: false }) : undefined;
    const context = Math.min(d.context, base.config.seqLen);
    const count = (t: Int32Array | MaskedTokens): number => Math.min(d.maxTokens, t instanceof Int32Array ? t.length : t.tokens.length);
    ready = { base, startId: tokenizer.startId, heldout, baseText, context };
    port.postMessage({ type: 'ready', heldoutTokens: count(heldout), baseTextTokens: baseText ? count(baseText) : 0, backend: info.description } satisfies EvalReply);
  } catch (e) {
    port.postMessage({ type: 'error', id: -1, message: e instanceof Error ? e.message : String(e) } satisfies EvalReply);
    return;
  }
  port.on('message', (req: EvalRequest) => {
    let adapter: LoraAdapter | undefined;
    try {
      const { base } = ready;
      adapter = LoraAdapter.fromTensors(base.config, base.sha256, d.lora, adapterTensorsFromFlat(base.config, d.lora, req.flat));
      const opts = { startId: ready.startId, context: ready.context, maxTokens: d.maxTokens, adapter };
      const h = evaluateLoss(base, ready.heldout, opts);
      const b = ready.baseText ? evaluateLoss(base, ready.baseText, opts).loss : undefined;
      port.postMessage({ type: 'result', id: req.id, heldoutLoss: h.loss, heldoutTokens: h.tokens, ...(b === undefined ? {} : { baseTextLoss: b }) } satisfies EvalReply);
    } catch (e) {
      port.postMessage({ type: 'error', id: req.id, message: e instanceof Error ? e.message : String(e) } satisfies EvalReply);
    } finally {
      adapter?.dispose();
    }
  });
}

void main();
