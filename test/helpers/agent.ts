import { afterEach } from '@jest/globals';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/validate.js';
import type { AgentConfig } from '../../src/config/types.js';
import { makeSecretsSource } from '../../src/credentials/index.js';
import { makeSecretsCache } from '../../src/credentials/source.js';
import { makeEngine, type Engine, type EngineDeps } from '../../src/engine/index.js';
import { makeLogger, type Logger } from '../../src/logger.js';
import type { Target } from './target.js';

/** A query with the seed's defaults, pointed at `url`. */
export function query(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { url, verb: 'GET', verify_ssl: 'true', headers: { Authorization: 'Basic {credentials}' }, ...extra };
}

let counter = 0;
/** A live APIProxy connection with every capability; `queries` merges over a default test query. */
export function connection(queries: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  counter++;
  const hex = counter.toString(16).padStart(12, '0');
  return {
    name: `Service ${counter}`,
    uuid: `00000000-0000-4000-8000-${hex}`,
    capabilities: ['privacy/access', 'privacy/delete', 'privacy/optout', 'privacy/identifiers'].filter((c) => `${c.split('/')[1]}` in queries),
    mode: 'live',
    connector_type: 'APIProxy',
    queries: { test: [query('http://127.0.0.1:9/health')], ...queries },
    credentials_location: 'default',
    ...extra,
  };
}

/** Captured log lines, parsed. */
export interface LogCapture {
  logger: Logger;
  lines: () => string[];
}

/** A real pino logger writing into memory. */
export function captureLogs(level = 'INFO'): LogCapture {
  const chunks: string[] = [];
  const logger = makeLogger({ level, destination: { write: (s: string) => void chunks.push(s) } });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

/** A test agent: a validated config, a JSONFile secrets file in a temp dir, and an engine. */
export interface TestAgent {
  config: AgentConfig;
  engine: Engine;
  logs: LogCapture;
  dir: string;
  setSecrets(secrets: Record<string, Record<string, unknown>>): void;
  close(): Promise<void>;
}

/** Build an agent around raw connections; secrets default to `{default: {credentials: 'dXNlcjpwYXNz'}}`. */
export function makeTestAgent(
  connections: Array<Record<string, unknown>>,
  opts: { top?: Record<string, unknown>; secrets?: Record<string, Record<string, unknown>>; level?: string; deps?: Partial<EngineDeps> } = {},
): TestAgent {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-agent-'));
  const setSecrets = (s: Record<string, Record<string, unknown>>) => writeFileSync(join(dir, 'secrets.json'), JSON.stringify(s));
  setSecrets(opts.secrets ?? { default: { credentials: 'dXNlcjpwYXNz' } });
  const config = validateConfig({
    connections,
    platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 'secrets.json' } } },
    ...opts.top,
    agent: { retry_min_delay_ms: 10, retry_max_delay_ms: 200, ...(opts.top?.agent as object) },
  });
  const cm = config.platform.credentials_manager;
  const secrets = makeSecretsCache(makeSecretsSource(cm, dir), { ttlMs: 60_000 });
  const logs = captureLogs(opts.level);
  const engine = makeEngine({ config, secrets, logger: logs.logger, ...opts.deps });
  return {
    config,
    engine,
    logs,
    dir,
    setSecrets,
    close: async () => {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The target and agent of the running test; whatever is set is closed after each test. */
export interface Fixtures {
  target?: Target;
  agent?: TestAgent;
}

/** Register an afterEach that closes the test's agent, then its target. */
export function useFixtures(): Fixtures {
  const fx: Fixtures = {};
  afterEach(async () => {
    await fx.agent?.close();
    await fx.target?.close();
    fx.agent = fx.target = undefined;
  });
  return fx;
}
