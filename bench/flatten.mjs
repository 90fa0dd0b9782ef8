// Case 2, flatten and CSV: the agent's access-response path (writeAccessReports: streaming split,
// JSON.parse per object, flatten, CSV) over one large body, against JSON.parse alone on the same
// bytes. Alternating rounds, best of each. Prints one JSON line.
// Run with --expose-gc so each phase starts from a collected heap.
import { join } from 'node:path';
import { DIST, MiB, emit, makeCountingSink, parseArgs, round } from './lib.mjs';
import { makeRecordsBody } from './records.mjs';

const args = parseArgs();
const SIZE = Number(args.mb ?? (args.quick ? 40 : 200)) * 1e6;
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 2));
const CHUNK = 64 * 1024; // what a socket read delivers

const { writeAccessReports } = await import(join(DIST, 'engine/responses.js'));
const { makeLogger } = await import(join(DIST, 'logger.js'));
const logger = makeLogger({ level: 'ERROR' });
const gc = globalThis.gc ?? (() => undefined);

const { body, count } = makeRecordsBody(SIZE);
const mb = body.length / 1e6;

/** The body as a response stream would deliver it: 64 KiB chunks. */
const asResponseBody = (buf) => ({
  async *[Symbol.asyncIterator]() {
    for (let i = 0; i < buf.length; i += CHUNK) yield buf.subarray(i, i + CHUNK);
  },
  destroy() {},
});

function baseline() {
  gc();
  const t0 = performance.now();
  const text = body.toString('utf8');
  const t1 = performance.now();
  const parsed = JSON.parse(text);
  const t2 = performance.now();
  if (parsed.length !== count) throw new Error(`JSON.parse found ${parsed.length} objects, expected ${count}`);
  return { total: t2 - t0, parseOnly: t2 - t1 };
}

async function agent() {
  gc();
  const sink = makeCountingSink();
  const out = { sink, connectionUuid: '00000000-0000-4000-8000-000000000000', reports: [] };
  const t0 = performance.now();
  const n = await writeAccessReports(asResponseBody(body), out, 64 * MiB, logger);
  const ms = performance.now() - t0;
  if (n !== count || sink.reports !== count) throw new Error(`agent wrote ${sink.reports} reports, expected ${count}`);
  return { ms, csvChars: sink.csvChars };
}

let bestBase = Infinity, bestParseOnly = Infinity, bestAgent = Infinity, csvChars = 0;
for (let r = 0; r < ROUNDS; r++) {
  const b = baseline();
  bestBase = Math.min(bestBase, b.total);
  bestParseOnly = Math.min(bestParseOnly, b.parseOnly);
  const a = await agent();
  bestAgent = Math.min(bestAgent, a.ms);
  csvChars = a.csvChars;
}

emit({
  mb: round(mb, 1),
  objects: count,
  csv_mb: round(csvChars / 1e6, 1),
  agent_ms: Math.round(bestAgent),
  json_parse_ms: Math.round(bestBase),
  json_parse_only_ms: Math.round(bestParseOnly),
  mb_per_s: round(mb / (bestAgent / 1000), 1),
  json_parse_mb_per_s: round(mb / (bestBase / 1000), 1),
  ratio_to_json_parse: round(bestAgent / bestBase, 2),
});
