// The memory case's response body: a bare JSON array of about `bytes` bytes of objects of about
// `objectBytes` bytes each (1 KB: nested access records; 500 KB: an activity log of such records).
// A few objects are serialised once into a pool; object i of the sequence is pool entry hash(i)
// stamped with "seq": i. So the target (bench/memory-target.mjs) streams the body from bounded
// memory, and the parent (bench/memory.mjs) regenerates the very same bytes for JSON.parse.
import { makeLargeObject, makeRandom, makeSizedRecord } from './records.mjs';

const pools = new Map();

/** The pool for an object size: texts without their opening '{', and their UTF-8 byte lengths. */
function poolFor(objectBytes) {
  let pool = pools.get(objectBytes);
  if (!pool) {
    const r = makeRandom(5);
    // Small objects vary ±12 % around their size (as records do); large ones are built up to it.
    const count = objectBytes <= 64 * 1024 ? 1024 : 8;
    const text = [];
    for (let k = 0; k < count; k++) {
      const obj = count === 1024 ? makeSizedRecord(r, k, Math.round(objectBytes * (0.88 + r() * 0.24))) : makeLargeObject(r, k, objectBytes);
      text.push(JSON.stringify(obj).slice(1));
    }
    pool = { text, bytes: text.map((t) => Buffer.byteLength(t)) };
    pools.set(objectBytes, pool);
  }
  return pool;
}

const indexOf = (pool, i) => (Math.imul(i, 0x9e3779b1) >>> 0) % pool.text.length;

/**
 * The body as pieces of about `pieceBytes` (strings), with the number of objects and the exact byte
 * length: objects are added while the array is shorter than `bytes`. `yield`s each piece.
 */
export function* bodyPieces(bytes, objectBytes, pieceBytes = 64 * 1024) {
  const pool = poolFor(objectBytes);
  let piece = '[';
  let size = 1;
  for (let i = 0; size < bytes; i++) {
    const k = indexOf(pool, i);
    const head = `${i ? ',' : ''}{"seq":${i},`;
    piece += head + pool.text[k];
    size += head.length + pool.bytes[k];
    if (piece.length >= pieceBytes) {
      yield piece;
      piece = '';
    }
  }
  yield `${piece}]`;
}

/** How many objects and bytes the body of `bytes` holds (without building it). */
export function bodyShape(bytes, objectBytes) {
  const pool = poolFor(objectBytes);
  let size = 1;
  let i = 0;
  for (; size < bytes; i++) size += (i ? 1 : 0) + 8 + String(i).length + pool.bytes[indexOf(pool, i)];
  return { objects: i, bytes: size + 1 };
}

/**
 * The same body as consecutive JSON arrays of whole objects, each at most about `groupBytes`
 * (so 1 GiB fits under V8's string limit), as Buffers: what JSON.parse is timed on.
 */
export function* bodyGroups(bytes, objectBytes, groupBytes = 64 * 1024 * 1024) {
  const pool = poolFor(objectBytes);
  let parts = [];
  let size = 0;
  let total = 1;
  for (let i = 0; total < bytes; i++) {
    const k = indexOf(pool, i);
    const text = `{"seq":${i},${pool.text[k]}`;
    total += (i ? 1 : 0) + 8 + String(i).length + pool.bytes[k];
    parts.push(text);
    size += pool.bytes[k];
    if (size >= groupBytes) {
      yield Buffer.from(`[${parts.join(',')}]`);
      parts = [];
      size = 0;
    }
  }
  if (parts.length) yield Buffer.from(`[${parts.join(',')}]`);
}
