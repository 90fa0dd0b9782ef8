// Deterministic, realistic access records: nested objects, arrays of objects, unicode, numbers,
// booleans and nulls, as a CRM or an order system would return them.

/** A small fast PRNG (mulberry32) so every run generates the same bytes. */
export function makeRandom(seed = 42) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ['Peter', 'Samir', 'Michael', 'Joanna', 'Zoë', 'Björn', 'Ånne', 'Łukasz', 'Chloé', 'Sørina', '太郎', 'Анна', 'Émile', 'Noël'];
const LAST = ['Gibbons', 'Nagheenanajar', 'Bolton', 'Ångström', 'Müller', 'Dvořák', 'García', 'O\'Brien', '山田', 'Иванова', 'Nguyễn'];
const CITY = ['Austin', 'Flander', 'München', 'Kraków', 'São Paulo', 'Zürich', '東京', 'Reykjavík', 'Île-de-France', 'Malmö'];
const STREET = ['191 N. Lamar', '12 Rue de la Paix', 'Königstraße 7', '3-1 Marunouchi', 'Calle Mayor 22', '8 Øster Allé'];
const WORDS = ['order', 'shipped', 'returned', 'gift', 'café', 'naïve', 'résumé', '"quoted"', 'comma, inside', 'line\nbreak', '🚀', 'ümlaut', '—dash—', 'tab\there'];
const SKUS = ['TPS-REPORT', 'STAPLER-RED', 'PRINTER-LC', 'MUG-INITECH', 'SWINGLINE'];

const pick = (rnd, list) => list[Math.floor(rnd() * list.length)];
const words = (rnd, n) => Array.from({ length: n }, () => pick(rnd, WORDS)).join(' ');

/** One order line: an object inside an array of objects. */
function orderItem(rnd) {
  return { sku: pick(rnd, SKUS), qty: 1 + Math.floor(rnd() * 5), unit_price: Math.round(rnd() * 10000) / 100, discount: rnd() < 0.7 ? null : Math.round(rnd() * 30) / 100 };
}

/** One realistic access record (about 1–2 KB of JSON). `i` makes ids distinct. */
export function makeRecord(rnd, i) {
  const first = pick(rnd, FIRST);
  const last = pick(rnd, LAST);
  const orders = Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, k) => ({
    order_id: `ORD-${i}-${k}`,
    placed_at: new Date(1_600_000_000_000 + Math.floor(rnd() * 1e11)).toISOString(),
    status: pick(rnd, ['placed', 'shipped', 'delivered', 'returned']),
    total: Math.round(rnd() * 100000) / 100,
    items: Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => orderItem(rnd)),
    gift_message: rnd() < 0.3 ? words(rnd, 6) : null,
  }));
  return {
    id: i,
    uuid: `${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}-4b1d-4c2a-9e3f-${String(i).padStart(12, '0')}`,
    email: `${first.toLowerCase()}.${i}@initech.example`,
    name: { first, last, display: `${first} ${last}` },
    active: rnd() < 0.8,
    score: Math.round(rnd() * 1e6) / 1e3,
    deleted_at: null,
    address: { type: pick(rnd, ['Home', 'Work']), street: pick(rnd, STREET), city: pick(rnd, CITY), zip_code: String(10000 + Math.floor(rnd() * 89999)), geo: { lat: rnd() * 180 - 90, lng: rnd() * 360 - 180 } },
    phones: Array.from({ length: Math.floor(rnd() * 3) }, (_, k) => ({ kind: k === 0 ? 'mobile' : 'home', number: `+1-555-${String(Math.floor(rnd() * 1e7)).padStart(7, '0')}`, verified: rnd() < 0.5 })),
    tags: Array.from({ length: Math.floor(rnd() * 4) }, () => pick(rnd, ['vip', 'newsletter', 'beta', 'churn-risk', 'ñandú'])),
    orders,
    preferences: { language: pick(rnd, ['en', 'de', 'ja', 'fr']), marketing: { email: rnd() < 0.5, sms: rnd() < 0.2 }, notes: words(rnd, 8) },
  };
}

/**
 * A JSON array body of about `bytes` bytes of records, as one Buffer (for the flatten case, which
 * compares against JSON.parse on the very same bytes).
 */
export function makeRecordsBody(bytes, seed = 7) {
  const rnd = makeRandom(seed);
  const parts = ['['];
  let size = 1;
  let count = 0;
  while (size < bytes) {
    const text = (count ? ',' : '') + JSON.stringify(makeRecord(rnd, count));
    parts.push(text);
    size += Buffer.byteLength(text);
    count++;
  }
  parts.push(']');
  return { body: Buffer.from(parts.join('')), count };
}

/**
 * A large access object of about `bytes` bytes: a customer with an `events` array of records (the
 * shape of an activity log). Used by the streaming target for the memory case.
 */
export function makeLargeObject(rnd, i, bytes) {
  const events = [];
  let size = 200;
  for (let k = 0; size < bytes; k++) {
    const r = makeRecord(rnd, i * 100_000 + k);
    events.push(r);
    size += JSON.stringify(r).length + 1;
  }
  return { id: i, kind: 'activity_log', subject: { email: `subject.${i}@initech.example` }, events };
}

/**
 * A record of about `bytes` bytes of JSON (UTF-8): makeRecord trimmed (orders, then order items)
 * while it is larger, then padded with words in `preferences.notes` until it is at least that large.
 * Records of makeRecord vary from 0.7 to 1.8 KB; this gives the envelope case its ~1 KiB records.
 */
export function makeSizedRecord(rnd, i, bytes) {
  const r = makeRecord(rnd, i);
  const size = () => Buffer.byteLength(JSON.stringify(r));
  while (size() > bytes && r.orders.length > 1) r.orders.pop();
  while (size() > bytes && r.orders[0].items.length > 1) r.orders[0].items.pop();
  if (size() > bytes) r.orders[0].gift_message = null;
  while (size() < bytes) r.preferences.notes += ` ${pick(rnd, WORDS)}`;
  return r;
}
