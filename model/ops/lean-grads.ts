/**
 * `tf.variableGrads` with the memory behaviour of a refcounting autograd (as PyTorch's). tfjs's
 * own backprop keeps every node's saved tensors, and the gradient of every intermediate tensor,
 * until the whole backward pass ends, and it never frees the saved tensors of nodes that do not
 * lead from the variables to the loss. Here, on the same tape and the same gradient functions:
 * - saved tensors of nodes off the variables→loss path are released as soon as the forward ends;
 * - a node's saved tensors are released right after its gradient is taken;
 * - the gradient of a node's outputs is released once the node has passed it on (each tensor's
 *   gradient is final when its producing node is reached, walking the tape backward);
 * - each node's gradient runs in its own tidy, so a custom gradient's temporaries go at once.
 * The arithmetic is unchanged: the same kernels run in the same order, so results are identical.
 * Uses tfjs engine internals (tape, gradient depth) of tfjs-core 4.x; nested gradients fall back
 * to tf.variableGrads.
 */
import * as tf from '@tensorflow/tfjs';

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

/** The node whose gradient leanVariableGrads is taking: its output ids and its inputs that need a gradient. */
let current: { outputs: Set<number>; inputs: Set<number> } | undefined;

/**
 * True while leanVariableGrads takes the gradient of the op that produced `output` and that op's
 * input `input` is off every path from the variables (e.g. a frozen weight): a custom gradient may
 * then return zeros for it instead of computing a gradient nothing reads. False anywhere else.
 */
export function gradientSkippable(input: tf.Tensor, output: tf.Tensor): boolean {
  return !!current && current.outputs.has(output.id) && !current.inputs.has(input.id);
}

/** Nodes of `tape` on a path from one of `xs` to `y`, their inputs pruned to those depending on `xs`. */
function pathNodes(tape: TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodeFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodeToY.add(node.id);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodeFromX.has(node.id) || !nodeToY.has(node.id)) continue;
    const inputs = Object.fromEntries(Object.entries(node.inputs).filter(([, t]) => fromX.has(t.id)));
    out.push({ ...node, inputs });
  }
  return out;
}

/**
 * Value and gradients of the scalar `f()` with respect to the trainable variables of `vars`,
 * keyed by variable name, as `tf.variableGrads` returns them; see the file comment for how it
 * differs (memory only). Call inside tf.tidy.
 */
export function leanVariableGrads(f: () => tf.Scalar, vars: readonly tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (typeof f !== 'function') throw new TypeError('leanVariableGrads: f must be a function');
  if (!Array.isArray(vars) || !vars.every((v) => v instanceof tf.Variable)) throw new TypeError('leanVariableGrads: vars must be an array of tf.Variable');
  const xs = vars.filter((v) => v.trainable);
  if (xs.length === 0) throw new RangeError('leanVariableGrads: none of the variables is trainable');
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth !== 0) return tf.variableGrads(f, [...vars]) as { value: tf.Scalar; grads: tf.NamedTensorMap };
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (!(y instanceof tf.Tensor) || y.rank !== 0) throw new RangeError('leanVariableGrads: f must return a scalar tensor');
  const tape = engine.state.activeTape ?? [];
  engine.state.activeTape = null;
  const path = pathNodes(tape, xs, y);
  const onPath = new Set(path.map((n) => n.id));
  for (const node of tape) if (!onPath.has(node.id)) node.saved?.forEach((t) => t.dispose());
  const targets = new Set(xs.map((x) => x.id));
  const grads = engine.tidy('backward', () => {
    const acc = new Map<number, tf.Tensor>();
    const held = new Set<tf.Tensor>();
    acc.set(y.id, tf.onesLike(y));
    held.add(acc.get(y.id) as tf.Tensor);
    for (let i = path.length - 1; i >= 0; i--) {
      const node = path[i];
      if (!node.gradient) throw new Error(`leanVariableGrads: no gradient function for ${node.kernelName}`);
      const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
      const names = Object.keys(node.inputs);
      const dxs = engine.tidy(`grad ${node.kernelName}`, () => {
        current = { outputs: new Set(node.outputs.map((o) => o.id)), inputs: new Set(names.map((n) => node.inputs[n].id)) };
        let g: Record<string, () => tf.Tensor>;
        try {
          g = (node.gradient as NonNullable<TapeNode['gradient']>)(dys);
        } finally {
          current = undefined;
        }
        return names.map((n) => {
          if (!(n in g)) throw new Error(`leanVariableGrads: cannot backprop through input ${n} of ${node.kernelName}`);
          return g[n]();
        });
      });
      const kept = new Set<tf.Tensor>();
      names.forEach((n, j) => {
        const x = node.inputs[n];
        let dx = dxs[j];
        if (dx.dtype !== 'float32') throw new Error(`leanVariableGrads: the gradient of ${n} of ${node.kernelName} is ${dx.dtype}, not float32`);
        if (!tf.util.arraysEqual(dx.shape, x.shape)) throw new Error(`leanVariableGrads: the gradient of ${n} of ${node.kernelName} has shape [${dx.shape}], the input [${x.shape}]`);
        // one tensor object per map entry, so releasing one entry never frees another
        if (held.has(dx) || kept.has(dx)) dx = tf.clone(dx);
        const prev = acc.get(x.id);
        if (prev) {
          const sum = tf.add(prev, dx);
          held.delete(prev);
          prev.dispose();
          if (!dys.includes(dx)) dx.dispose();
          dx = sum;
        }
        acc.set(x.id, dx);
        held.add(dx);
        kept.add(dx);
      });
      // this node's output gradients have been passed on: release them (not the variables' own)
      for (const o of node.outputs) {
        const d = acc.get(o.id);
        if (!d || targets.has(o.id)) continue;
        acc.delete(o.id);
        held.delete(d);
        if (!kept.has(d)) d.dispose();
      }
      node.saved?.forEach((t) => t.dispose());
    }
    return xs.map((x) => acc.get(x.id) ?? null) as tf.Tensor[];
  });
  for (const node of tape) node.saved?.forEach((t) => t.dispose());
  const named: tf.NamedTensorMap = {};
  xs.forEach((v, i) => {
    if (grads[i]) named[v.name] = grads[i];
  });
  if (Object.keys(named).length === 0) throw new Error('leanVariableGrads: no variable reaches the value of f');
  return { value: y as tf.Scalar, grads: named };
}
