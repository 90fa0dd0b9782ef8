/**
 * The query runner: one query of a connection run, composed from its parts — tokens fill the
 * templates, a pager walks the pages, each response is read once as a stream (records, pointers,
 * body checks). The runner has no branch per feature: a query without tokens, pages or checks is
 * the same loop with an empty token list, a single-page pager and no captures.
 */
import type { Dispatcher } from 'undici';
import { AgentError, ErrorCodes, isAgentError } from '../errors.js';
import { ABSENT, describeType } from '../json-pointer.js';
import type { APIProxyConnection, QueryType, TokenSpec } from '../config/types.js';
import type { Secret, SecretsCache } from '../credentials/source.js';
import type { Logger } from '../logger.js';
import type { TemplateValues } from '../templates.js';
import { compileQuery, pointerOf, type CompiledQuery } from './compile.js';
import type { EngineHooks } from './connection.js';
import type { ConnectorRun } from '../connectors/types.js';
import { makeMask, type Mask } from './mask.js';
import { makePager } from './paginate.js';
import { isNoData, readResponse, type RecordConsumer } from './read.js';
import { renderRequest, type HttpRequest, type RequestStep } from './render.js';
import { exchangeWithRetry, type RetryPolicy } from './send.js';
import type { HttpResponse } from './exchange.js';
import { expiryOf, tokensUsed, type FetchedToken, type TokenCache, type TokenScope } from './tokens.js';

/** What the HTTP query path needs from the engine; all of it passed in. */
export interface ApiProxyContext {
  readonly dispatchers: { readonly verified: Dispatcher; readonly insecure: () => Dispatcher };
  readonly retry: RetryPolicy;
  readonly maxObjectBytes: number;
  /** Steps applied to every rendered request (auth exchanges). */
  readonly steps: readonly RequestStep[];
  readonly hooks: EngineHooks;
  /** Shared (connection-scoped) tokens, reused by every job of the engine. */
  readonly tokens: TokenCache;
}

/** The state of one job's run of one APIProxy connection for one query type. */
export interface ConnectionRun {
  readonly conn: APIProxyConnection;
  readonly type: QueryType;
  readonly identifiers: Readonly<Record<string, string>>;
  /** The connection's secret; replaced when refreshed after a 401/403. */
  secret: Secret;
  /** Fetches the secret again (after invalidating it). */
  readonly refreshSecret: () => Promise<Secret>;
  readonly tokens: TokenScope;
  readonly ctx: ApiProxyContext;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Reports each settled query (metrics). */
  readonly settled?: ConnectorRun['settled'];
}

const NO_TOKENS: readonly string[] = [];

/** True when `o` has an own enumerable key (without building the key list). */
function hasKeys(o: object): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}

/** A mask for everything sensitive the run has seen: identifiers, the secret's values, tokens. */
export function maskOf(run: ConnectionRun): Mask {
  return makeMask([...Object.values(run.identifiers), ...Object.values(run.secret), ...run.tokens.known()]);
}

/** Refresh the secret after a refusal (it may have been rotated) and forget the tokens fetched with it. */
export async function refreshSecretOf(run: ConnectionRun, secrets: SecretsCache): Promise<Secret> {
  secrets.invalidate(run.conn.credentials_location);
  run.tokens.dropAll();
  return secrets.get(run.conn.credentials_location);
}

const is401 = (e: unknown) => isAgentError(e, ErrorCodes.HTTP_STATUS) && e.status === 401;
const refused = (e: unknown) =>
  (isAgentError(e, ErrorCodes.HTTP_STATUS) || isAgentError(e, ErrorCodes.TOKEN_FAILED)) && (e.status === 401 || e.status === 403);

/**
 * Render and send one request of `q`, with its tokens and `vars` (pagination) filled in. A 401 to a
 * request that carried tokens drops them, fetches new ones and sends once more; then a 401/403
 * (or a login refused with one) refreshes the secret once, when `secretRetry`. Resolves with a
 * valid response, whose body the caller must consume.
 */
async function send(
  run: ConnectionRun,
  q: CompiledQuery,
  where: Record<string, unknown>,
  vars: Readonly<Record<string, string>>,
  url: string | undefined,
  secretRetry: boolean,
): Promise<{ res: HttpResponse; req: HttpRequest }> {
  const { ctx, signal } = run;
  const names = run.tokens.names.size === 0 ? NO_TOKENS : tokensUsed(q.variables, run.tokens.names);
  let tokenRetried = false;
  let secretRefreshed = !secretRetry;
  for (;;) {
    let used: Record<string, string> | undefined;
    try {
      if (names.length) used = await run.tokens.values(names, signal);
      const extra = used ? { ...vars, ...used } : vars;
      const values: TemplateValues = {
        secrets: run.secret,
        identifiers: hasKeys(extra) ? { ...run.identifiers, ...extra } : run.identifiers,
      };
      let req: HttpRequest = renderRequest(q, values);
      if (url !== undefined) req = { ...req, url };
      for (const step of ctx.steps) req = await step(req, signal);
      const res = await exchangeWithRetry(req, {
        dispatcher: q.query.verify_ssl === 'false' ? ctx.dispatchers.insecure() : ctx.dispatchers.verified,
        valid: q.valid,
        retryOn: q.retryOn,
        policy: ctx.retry,
        signal,
        onRetry: (f) => {
          run.log.warn({ ...where, attempt: f.attempt, reason: f.reason, delayMs: Math.round(f.delayMs) }, 'retrying query');
          ctx.hooks.retried?.({ connection: run.conn.name, type: run.type, status: f.status });
        },
      });
      return { res, req };
    } catch (err) {
      const e = signal.aborted ? (signal.reason ?? err) : err;
      if (!tokenRetried && names.length && is401(e)) {
        tokenRetried = true;
        run.tokens.drop(used ?? {});
        run.log.warn({ ...where, status: 401 }, 'target refused the token; fetching a new one and retrying once');
        continue;
      }
      if (!secretRefreshed && refused(e)) {
        secretRefreshed = true;
        run.secret = await run.refreshSecret();
        run.log.warn({ ...where, status: (e as AgentError).status }, 'target refused the credentials; refreshed the secret and retrying once');
        continue;
      }
      throw e;
    }
  }
}

/**
 * Run one query: every page, each read once (records to `consume`), within the run's deadline.
 * Returns the number of records read. Throws PAGINATION_LIMIT when more than max_pages pages are needed.
 */
export async function runQuery(run: ConnectionRun, q: CompiledQuery, label: string, consume?: RecordConsumer): Promise<number> {
  const { ctx, type } = run;
  const started = performance.now();
  // Bindings passed per line rather than a child logger per query: child() runs redaction setup,
  // which showed in the engine's profile.
  const where = { query: label, method: q.method, origin: q.origin };
  const pager = makePager(q.paginate);
  const maxPages = q.paginate?.max_pages ?? 1;
  const label_ = type === 'identifiers' ? 'identifiers response' : type === 'access' ? 'access response' : 'response';
  let records = 0;
  let status = 0;
  try {
    for (let page = 1; ; page++) {
      const { res, req } = await send(run, q, where, pager.variables(), pager.nextUrl(), true);
      status = res.statusCode;
      const read = await readResponse(res, q, {
        consume,
        captures: pager.captures,
        label: label_,
        maxObjectBytes: ctx.maxObjectBytes,
        log: run.log,
        mask: () => maskOf(run),
      });
      records += read.records;
      if (!q.paginate || !pager.advance({ ...read, headers: res.headers, url: req.url })) break;
      if (page >= maxPages) {
        throw new AgentError(
          ErrorCodes.PAGINATION_LIMIT,
          `${label} has more than max_pages (${maxPages}) pages; raise paginate.max_pages (nothing is truncated silently: the query failed)`,
        );
      }
    }
    const durationMs = performance.now() - started;
    if (run.log.isLevelEnabled('info')) run.log.info({ ...where, status, ms: Math.round(durationMs) }, 'query succeeded');
    run.settled?.({ label, durationMs, outcome: 'ok', status });
    return records;
  } catch (err) {
    const e = run.signal.aborted ? (run.signal.reason ?? err) : err;
    run.settled?.({ label, durationMs: performance.now() - started, outcome: 'error', status: (e as AgentError).status });
    throw e;
  }
}

/**
 * Fetch one token for `run`: send its login request (tokens it depends on filled from `deps`),
 * read the value and lifetime at their pointers. Failures become TOKEN_FAILED naming the token
 * (keeping a refused login's status); the deadline and shutdown pass through as they are.
 */
export async function fetchToken(run: ConnectionRun, name: string, spec: TokenSpec, deps: Readonly<Record<string, string>>, signal: AbortSignal): Promise<FetchedToken> {
  const q = compileQuery(spec.request);
  const lifetime = spec.expires_in ?? spec.expires_at;
  const captures = [pointerOf(spec.value), ...(lifetime !== undefined ? [pointerOf(lifetime)] : [])];
  const where = { query: `tokens.${name}`, method: q.method, origin: q.origin };
  try {
    const { res } = await send({ ...run, signal }, q, where, deps, undefined, false);
    if (isNoData(res.statusCode)) {
      await res.body.dump();
      throw new AgentError(ErrorCodes.TOKEN_FAILED, `token '${name}': the login request answered ${res.statusCode}, which carries no token`, { status: res.statusCode });
    }
    const read = await readResponse(res, q, { captures, label: 'login response', maxObjectBytes: run.ctx.maxObjectBytes, log: run.log, mask: () => maskOf(run) });
    const value = read.values[0];
    if (typeof value !== 'string' || value === '') {
      const found = value === ABSENT ? 'nothing' : value === '' ? 'an empty string' : describeType(value);
      throw new AgentError(ErrorCodes.TOKEN_FAILED, `token '${name}': the login response has ${found} at value "${spec.value}", not a token string; check the pointer against the response`);
    }
    const said = read.values[1];
    const expiresAt = expiryOf(name, spec, value, said === ABSENT ? undefined : said, Date.now());
    run.log.debug({ tokenName: name, expiresInS: Number.isFinite(expiresAt) ? Math.round((expiresAt - Date.now()) / 1000) : null }, 'token fetched');
    return { value, expiresAt };
  } catch (err) {
    if (signal.aborted || isAgentError(err, ErrorCodes.JOB_TIMEOUT) || isAgentError(err, ErrorCodes.CANCELLED) || isAgentError(err, ErrorCodes.TOKEN_FAILED)) throw err;
    if (isAgentError(err)) {
      const what = err.code === ErrorCodes.HTTP_STATUS ? `the login request failed: ${err.message}` : `${err.code}: ${err.message}`;
      throw new AgentError(ErrorCodes.TOKEN_FAILED, `token '${name}': ${what}`, { cause: err, status: err.status });
    }
    throw err;
  }
}
