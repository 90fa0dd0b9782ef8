import type { ConnectionResult, JobProgress } from './engine/index.js';

/** Render rows as a plain aligned text table with a header line. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** The `result` cell of a connection in `run`'s table: its error, why it was skipped, its report count, or its identifiers. */
export function resultCell(c: ConnectionResult): string {
  if (c.error) return `${c.error.code}: ${c.error.message}`;
  if (c.reason !== undefined) return c.reason;
  const reports = c.report_count ?? c.reports?.length;
  if (reports !== undefined) return `${reports} report(s)`;
  return c.identifiers ? JSON.stringify(c.identifiers) : 'ok';
}

/** Progress lines on a terminal: what is running and how long each connection took. */
export function makeProgress(stream: NodeJS.WriteStream): JobProgress {
  return {
    onStart: (c) => stream.write(`… ${c.name} running\n`),
    onDone: (r: ConnectionResult) =>
      stream.write(`${r.status === 'succeeded' ? '✔' : r.status === 'failed' ? '✘' : '-'} ${r.name} ${r.status} in ${r.duration_ms ?? 0} ms${r.error ? ` (${r.error.code})` : ''}\n`),
  };
}
