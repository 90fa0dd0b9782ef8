import { describe, expect, it } from '@jest/globals';
import { makeSecretsCache, type Secret, type SecretsSource } from '../src/credentials/source.js';
import { AgentError, ErrorCodes } from '../src/errors.js';

/** A source counting its fetches; `fail` makes the next fetches reject; `gate` holds them until released. */
function makeCountingSource() {
  const calls: string[] = [];
  let version = 0;
  let fail = false;
  let gate: Promise<void> | undefined;
  const source: SecretsSource = {
    async get(location) {
      calls.push(location);
      if (gate) await gate;
      if (fail) throw new AgentError(ErrorCodes.SECRET_PROVIDER_ERROR, 'provider down');
      version++;
      return Object.freeze({ location, version: String(version) }) as Secret;
    },
  };
  return {
    source,
    calls,
    setFail(value: boolean) {
      fail = value;
    },
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

describe('makeSecretsCache', () => {
  it('serves a secret from memory for ttlMs, then fetches again', async () => {
    let clock = 1_000_000;
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source, { ttlMs: 60_000, now: () => clock });
    expect((await cache.get('a')).version).toBe('1');
    clock += 59_999;
    expect((await cache.get('a')).version).toBe('1');
    expect(counting.calls).toEqual(['a']);
    clock += 1;
    expect((await cache.get('a')).version).toBe('2');
    expect(counting.calls).toEqual(['a', 'a']);
  });

  it('defaults to a 5 minute TTL', async () => {
    let clock = 0;
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source, { now: () => clock });
    await cache.get('a');
    clock = 5 * 60 * 1000 - 1;
    await cache.get('a');
    expect(counting.calls).toHaveLength(1);
    clock = 5 * 60 * 1000;
    await cache.get('a');
    expect(counting.calls).toHaveLength(2);
  });

  it('keeps locations apart', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source);
    expect((await cache.get('a')).location).toBe('a');
    expect((await cache.get('b')).location).toBe('b');
    await cache.get('a');
    expect(counting.calls).toEqual(['a', 'b']);
  });

  it('invalidate forces a refetch of that location only', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source);
    await cache.get('a');
    await cache.get('b');
    cache.invalidate('a');
    expect((await cache.get('a')).version).toBe('3');
    expect((await cache.get('b')).version).toBe('2');
    expect(counting.calls).toEqual(['a', 'b', 'a']);
  });

  it('shares one in-flight fetch between concurrent gets', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source);
    const release = counting.hold();
    const pending = Array.from({ length: 20 }, () => cache.get('a'));
    release();
    const secrets = await Promise.all(pending);
    expect(counting.calls).toEqual(['a']);
    expect(new Set(secrets).size).toBe(1);
  });

  it('does not cache a failed fetch, and concurrent callers share the failure', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source);
    counting.setFail(true);
    const release = counting.hold();
    const pending = [cache.get('a'), cache.get('a')];
    release();
    for (const result of await Promise.allSettled(pending)) {
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'SECRET_PROVIDER_ERROR' });
    }
    expect(counting.calls).toEqual(['a']);
    counting.setFail(false);
    expect((await cache.get('a')).version).toBe('1');
    expect(counting.calls).toEqual(['a', 'a']);
  });

  it('does not store the result of a fetch invalidated while in flight', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source);
    const release = counting.hold();
    const stale = cache.get('a');
    cache.invalidate('a');
    release();
    expect((await stale).version).toBe('1');
    expect((await cache.get('a')).version).toBe('2');
    await cache.get('a');
    expect(counting.calls).toEqual(['a', 'a']);
  });

  it('with ttlMs 0 fetches every time but still shares concurrent fetches', async () => {
    const counting = makeCountingSource();
    const cache = makeSecretsCache(counting.source, { ttlMs: 0 });
    await Promise.all([cache.get('a'), cache.get('a')]);
    await cache.get('a');
    expect(counting.calls).toEqual(['a', 'a']);
  });

  it('rejects a negative or non-finite TTL with CONFIG_INVALID', () => {
    const { source } = makeCountingSource();
    for (const ttlMs of [-1, Number.NaN, Infinity]) {
      expect(() => makeSecretsCache(source, { ttlMs })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
  });
});
