/**
 * A database row as a report record: the same flattening as JSON. JSON/JSONB values nest (the
 * driver parses them), dates become ISO 8601, binary becomes base64, big integers their decimal
 * text, NULL stays null (an empty cell).
 */

/** Normalise one column value. */
export function columnValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(columnValue);
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = columnValue(x);
    return out;
  }
  return v;
}

/** Normalise a row (column → value) into a record. */
export function rowRecord(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = columnValue(v);
  return out;
}
