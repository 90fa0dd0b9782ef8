import { describe, it, expect } from '@jest/globals';
import { flatten } from '../src/reports/flatten.js';

describe('flatten', () => {
  it('flattens the seed\'s Peter Gibbons objects into DataGrail\'s report rows', () => {
    expect(flatten({ first_name: 'Peter', last_name: 'Gibbons', company: 'Initech', friends: ['Samir', 'Michael'] })).toEqual([
      ['first_name', 'Peter'],
      ['last_name', 'Gibbons'],
      ['company', 'Initech'],
      ['friends_0', 'Samir'],
      ['friends_1', 'Michael'],
    ]);
    expect(
      flatten({ address_type: 'Home', address: { street: '191 N. Lamar', city: 'Flander', state: 'Illinois', zip_code: '77070' } }),
    ).toEqual([
      ['address_type', 'Home'],
      ['address_street', '191 N. Lamar'],
      ['address_city', 'Flander'],
      ['address_state', 'Illinois'],
      ['address_zip_code', '77070'],
    ]);
  });

  it('combines arrays of objects depth-first: orders_0_id, orders_0_items_1_sku', () => {
    const obj = { orders: [{ id: 7, items: [{ sku: 'A' }, { sku: 'B', qty: 2 }] }, { id: 8 }], after: 'x' };
    expect(flatten(obj)).toEqual([
      ['orders_0_id', '7'],
      ['orders_0_items_0_sku', 'A'],
      ['orders_0_items_1_sku', 'B'],
      ['orders_0_items_1_qty', '2'],
      ['orders_1_id', '8'],
      ['after', 'x'],
    ]);
  });

  it('suffixes nested arrays with each index: m_0_1', () => {
    expect(flatten({ m: [[1, 2], [3]] })).toEqual([
      ['m_0_0', '1'],
      ['m_0_1', '2'],
      ['m_1_0', '3'],
    ]);
  });

  it('writes numbers and booleans as JSON text, null as an empty cell, strings untouched', () => {
    const obj = JSON.parse('{"i": 42, "f": -1.5, "e": 1e21, "small": 1e-7, "z": -0, "t": true, "b": false, "n": null, "s": "", "u": " ü 😀 \\"q\\" ,\\n", "ns": "007"}');
    expect(flatten(obj)).toEqual([
      ['i', '42'],
      ['f', '-1.5'],
      ['e', '1e+21'],
      ['small', '1e-7'],
      ['z', '0'],
      ['t', 'true'],
      ['b', 'false'],
      ['n', ''],
      ['s', ''],
      ['u', ' ü 😀 "q" ,\n'],
      ['ns', '007'],
    ]);
  });

  it('keeps an empty object or array as its key with an empty value', () => {
    expect(flatten({ a: {}, b: [], c: { d: [], e: { f: {} } }, g: [{}, []] })).toEqual([
      ['a', ''],
      ['b', ''],
      ['c_d', ''],
      ['c_e_f', ''],
      ['g_0', ''],
      ['g_1', ''],
    ]);
  });

  it('yields no rows for an empty top-level object', () => {
    expect(flatten({})).toEqual([]);
  });

  it('keeps insertion order of non-numeric keys; integer-like keys come first (JavaScript object order)', () => {
    expect(flatten(JSON.parse('{"zeta": 1, "alpha": {"y": 1, "b": 2}, "mid": 3}')).map((r) => r[0])).toEqual(['zeta', 'alpha_y', 'alpha_b', 'mid']);
    expect(flatten(JSON.parse('{"b": 1, "20": 2, "3": 3}')).map((r) => r[0])).toEqual(['3', '20', 'b']);
  });

  it('treats "__proto__" and "constructor" keys as ordinary data', () => {
    const obj = JSON.parse('{"__proto__": {"x": 1}, "constructor": "c"}') as Record<string, unknown>;
    expect(flatten(obj)).toEqual([
      ['__proto___x', '1'],
      ['constructor', 'c'],
    ]);
  });

  it('flattens a 100 000-level nesting without overflowing the stack', () => {
    const depth = 100_000;
    const obj = JSON.parse(`{"a": ${'['.repeat(depth)}"deep"${']'.repeat(depth)}, "b": ${'{"k":'.repeat(depth)}{}${'}'.repeat(depth)}, "c": 1}`);
    const rows = flatten(obj);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toEqual([`a${'_0'.repeat(depth)}`, 'deep']);
    expect(rows[1]).toEqual([`b${'_k'.repeat(depth)}`, '']);
    expect(rows[2]).toEqual(['c', '1']);
  });

  it('walks deep subtrees in the same order as shallow ones', () => {
    // Below the recursion cut-off and past it, the same shape must give the same suffixes in order.
    const shape = { x: [1, { y: 'a', z: [] }, null], w: true };
    let deep: unknown = shape;
    for (let i = 0; i < 600; i++) deep = [deep];
    const prefix = `d${'_0'.repeat(600)}`;
    expect(flatten({ d: deep })).toEqual(flatten(shape).map(([k, v]) => [`${prefix}_${k}`, v]));
  });
});
