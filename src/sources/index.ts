/**
 * Request source types, one module each behind one interface, and what the config checks of them.
 * A source's adapter turns its config and secret into a {@link RequestSource}.
 */
import type { RequestSourceConfig, RequestSourceType } from '../config/types.js';
import type { ConfigProblem } from '../errors.js';
import { formatPointer } from '../json-pointer.js';
import type { Secret } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { RetryPolicy } from '../engine/send.js';
import { renderHeader, parseTemplate } from '../templates.js';
import { checkDastraOptions, makeDastraSource } from './dastra.js';
import { checkHttpSourceOptions, makeHttpSource } from './http.js';
import type { TokenCache } from '../engine/tokens.js';
import type { RequestSource } from './types.js';

export type { RequestSource, PendingRequest, PendingJob, JobOutcome } from './types.js';

/** What building a source needs besides its config. */
export interface SourceDeps {
  readonly secret: Secret;
  readonly retry: RetryPolicy;
  readonly logger: Logger;
  /** The source's shared tokens, kept by the caller across rounds (so a poll does not log in again). */
  readonly tokenCache?: TokenCache;
}

/** One request source type. */
export interface SourceAdapter {
  readonly type: RequestSourceType;
  /** Every problem with `options` as `{field, message}`, field dotted for nested options; [] when fine. */
  check(options: unknown): Array<{ readonly field: string; readonly message: string }>;
  make(cfg: RequestSourceConfig, deps: SourceDeps): RequestSource;
}

/** Default seconds between two polls of a source. */
export const DEFAULT_POLL_INTERVAL_SECONDS = 60;

/** The source's header templates, filled from its secret (values as they are: the secret is trusted config). */
export function renderSourceHeaders(cfg: RequestSourceConfig, secret: Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(cfg.headers ?? {})) out[name] = renderHeader(parseTemplate(value), { secrets: secret, identifiers: {} });
  return out;
}

const dastra: SourceAdapter = {
  type: 'Dastra',
  check: checkDastraOptions,
  make(cfg, deps) {
    const o = cfg.options as Record<string, unknown>;
    return makeDastraSource({
      name: cfg.name,
      baseUrl: o.base_url as string,
      workspaceId: o.workspace_id as string | number,
      headers: renderSourceHeaders(cfg, deps.secret),
      ...(o.states !== undefined && { states: o.states as string[] }),
      ...(o.purposes !== undefined && { purposes: o.purposes as Record<string, 'access' | 'delete' | 'optout'> }),
      ...(o.identifiers !== undefined && { identifiers: o.identifiers as Record<string, string> }),
      ...(o.require_identity_validated !== undefined && { requireIdentityValidated: o.require_identity_validated as boolean }),
      ...(o.state_when_done !== undefined && { stateWhenDone: o.state_when_done as string }),
      ...(o.page_size !== undefined && { pageSize: o.page_size as number }),
      retry: deps.retry,
    });
  },
};

/** An HTTP source's `headers` go with both of its queries (a query's own header of the same name wins). */
function withSourceHeaders(cfg: RequestSourceConfig): Record<string, unknown> {
  const o = cfg.options as Record<string, unknown>;
  if (!cfg.headers) return o;
  const merge = (q: unknown) =>
    q && typeof q === 'object' ? { ...q, headers: { ...cfg.headers, ...((q as { headers?: Record<string, string> }).headers ?? {}) } } : q;
  return { ...o, list: merge(o.list), ...(o.finish !== undefined && { finish: merge(o.finish) }) };
}

const http: SourceAdapter = {
  type: 'HTTP',
  check: checkHttpSourceOptions,
  make(cfg, deps) {
    return makeHttpSource({
      name: cfg.name,
      options: withSourceHeaders(cfg),
      secret: deps.secret,
      ...(cfg.tokens !== undefined && { tokens: cfg.tokens }),
      retry: deps.retry,
      logger: deps.logger,
      ...(deps.tokenCache && { tokenCache: deps.tokenCache }),
    });
  },
};

/** Every request source type; the schema's enum is checked against these in a test. */
export const SOURCE_ADAPTERS: readonly SourceAdapter[] = [dastra, http];

/** The adapter of a type. */
export function adapterOf(type: RequestSourceType): SourceAdapter | undefined {
  return SOURCE_ADAPTERS.find((a) => a.type === type);
}

/** Seconds between polls of a source (`options.poll_interval_seconds`). */
export function pollIntervalOf(cfg: RequestSourceConfig): number {
  const v = (cfg.options as Record<string, unknown>).poll_interval_seconds;
  return typeof v === 'number' && v > 0 ? v : DEFAULT_POLL_INTERVAL_SECONDS;
}

/** Every problem with the config's request_sources that the schema cannot say: names, headers, adapter options. */
export function checkRequestSources(raw: unknown): ConfigProblem[] {
  if (!Array.isArray(raw)) return [];
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, number>();
  raw.forEach((s, i) => {
    if (typeof s !== 'object' || s === null) return;
    const src = s as Record<string, unknown>;
    const at = `/request_sources/${i}`;
    if (typeof src.name === 'string') {
      const first = seen.get(src.name);
      if (first === undefined) seen.set(src.name, i);
      else problems.push({ path: `${at}/name`, message: `request source ${i} has the same name '${src.name}' as request source ${first}; give each its own name` });
    }
    if (typeof src.headers === 'object' && src.headers !== null) {
      for (const [name, value] of Object.entries(src.headers)) {
        if (typeof value !== 'string') continue;
        try {
          parseTemplate(value);
        } catch (err) {
          problems.push({ path: `${at}/headers${formatPointer([name])}`, message: (err as Error).message });
        }
      }
    }
    if (src.type === 'Dastra' && src.tokens !== undefined) {
      problems.push({ path: `${at}/tokens`, message: 'a Dastra source authenticates with its headers (e.g. Basic credentials); tokens apply to HTTP sources: remove them' });
    }
    const adapter = SOURCE_ADAPTERS.find((a) => a.type === src.type);
    if (!adapter) return; // the schema lists the types
    // HTTP sources check their tokens with their options (they may be given next to options).
    const options = src.type === 'HTTP' && src.tokens !== undefined && typeof src.options === 'object' && src.options !== null ? { ...src.options, tokens: src.tokens } : src.options ?? {};
    for (const p of adapter.check(options)) {
      const field = p.field ? formatPointer(p.field.split('.')) : '';
      problems.push({ path: `${at}/options${field}`, message: p.message });
    }
  });
  return problems;
}
