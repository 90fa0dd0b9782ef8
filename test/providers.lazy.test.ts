/** Building a credentials or storage provider loads no cloud SDK or driver: that waits for first use. */
import { describe, it, expect } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

describe('lazy SDKs', () => {
  it('an AWS, Azure, GCP or B2 provider built from options has loaded no SDK; its first use loads it', () => {
    const out = execFileSync(process.execPath, [join(process.cwd(), 'test/fixtures/lazy-sdk-probe.mjs'), join(process.cwd(), 'dist')], { encoding: 'utf8' });
    const { before, after } = JSON.parse(out.trim().split('\n').pop()!);
    expect(before).toBe(0);
    expect(after).toBeGreaterThan(0);
  });
});
