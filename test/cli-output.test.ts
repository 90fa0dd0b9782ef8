import { describe, it, expect } from '@jest/globals';
import { formatTable, makeProgress, resultCell } from '../src/cli-output.js';

describe('CLI output', () => {
  it('aligns table columns under a header and a rule', () => {
    expect(formatTable(['connection', 'health'], [['User Service', 'healthy'], ['Orders', 'UNHEALTHY']])).toBe(
      'connection    health\n------------  ---------\nUser Service  healthy\nOrders        UNHEALTHY\n',
    );
  });

  it("run's result cell counts every report, also past the listed ones", () => {
    const base = { uuid: 'u', name: 'n', status: 'succeeded' as const };
    expect(resultCell({ ...base, reports: ['/r/u/report_1.csv'], report_count: 5000, report_location: '/r/u', reports_truncated: true })).toBe('5000 report(s)');
    expect(resultCell({ ...base, reports: ['/r/u/report_1.csv', '/r/u/report_2.csv'] })).toBe('2 report(s)');
    expect(resultCell({ ...base, status: 'failed', report_count: 3, error: { code: 'HTTP_NETWORK', message: 'reset' } })).toBe('HTTP_NETWORK: reset');
    expect(resultCell({ ...base, identifiers: { user_id: ['u-1'] } })).toBe('{"user_id":["u-1"]}');
  });

  it('progress says what is running and how long each connection took', () => {
    let text = '';
    const p = makeProgress({ write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream);
    p.onStart!({ uuid: 'u', name: 'User Service' });
    p.onDone!({ uuid: 'u', name: 'User Service', status: 'succeeded', duration_ms: 42 });
    p.onDone!({ uuid: 'o', name: 'Orders', status: 'failed', duration_ms: 7, error: { code: 'HTTP_STATUS', message: 'x' } });
    expect(text).toBe('… User Service running\n✔ User Service succeeded in 42 ms\n✘ Orders failed in 7 ms (HTTP_STATUS)\n');
  });
});
