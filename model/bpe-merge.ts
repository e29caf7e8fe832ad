/**
 * Applies BPE merges to one word in O(n log n): a linked list of symbols and a min-heap of
 * candidate pairs keyed by (rank, position); stale candidates are skipped when popped.
 */

/** Merges `parts` (symbols) by `ranks` ("a b" → rank), lowest rank first, leftmost on ties. */
export function mergeByRank(parts: string[], ranks: ReadonlyMap<string, number>): string[] {
  const n = parts.length;
  if (n < 2) return parts;
  const sym = parts.slice();
  const prev = new Int32Array(n), next = new Int32Array(n);
  for (let i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
  // heap of [rank, pos, rightSymbol]
  const heap: [number, number, string][] = [];
  const less = (a: [number, number, string], b: [number, number, string]): boolean => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  const push = (e: [number, number, string]): void => {
    heap.push(e);
    let i = heap.length - 1;
    while (i > 0) { const p = (i - 1) >> 1; if (!less(heap[i]!, heap[p]!)) break; [heap[i], heap[p]] = [heap[p]!, heap[i]!]; i = p; }
  };
  const pop = (): [number, number, string] => {
    const top = heap[0]!, last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!]; i = m;
      }
    }
    return top;
  };
  const consider = (i: number): void => {
    const j = next[i]!;
    if (i < 0 || j < 0) return;
    const r = ranks.get(`${sym[i]} ${sym[j]}`);
    if (r !== undefined) push([r, i, sym[j]!]);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  const alive = new Uint8Array(n).fill(1);
  while (heap.length) {
    const [r, i, right] = pop();
    const j = next[i]!;
    if (!alive[i] || j < 0 || sym[j] !== right || ranks.get(`${sym[i]} ${right}`) !== r) continue;
    sym[i] = sym[i]! + right;
    alive[j] = 0;
    next[i] = next[j]!;
    if (next[j]! >= 0) prev[next[j]!] = i;
    if (prev[i]! >= 0) consider(prev[i]!);
    consider(i);
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}
