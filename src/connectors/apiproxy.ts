/**
 * The APIProxy connector: HTTP requests built from templates (DataGrail's API Proxy connection),
 * with tokens, envelopes, pages and GraphQL. The query path itself is src/engine/query.ts.
 */
import { AgentError, ErrorCodes, asAgentError } from '../errors.js';
import { PAGINATION_VARIABLES, type APIProxyConnection, type APIProxyQuery, type QueryType } from '../config/types.js';
import type { Secret, SecretsCache } from '../credentials/source.js';
import { compileQuery, type CompiledQuery } from '../engine/compile.js';
import { firstPageVariables } from '../engine/paginate.js';
import { fetchToken, refreshSecretOf, runQuery, type ApiProxyContext, type ConnectionRun } from '../engine/query.js';
import { renderMasked } from '../engine/render.js';
import { makeTokenScope, tokenOrder, tokensUsed } from '../engine/tokens.js';
import type { Connector, ConnectorRun, PlannedStatement } from './types.js';
import type { Logger } from '../logger.js';

/** IDENTIFIER_COLLISION when names shadow each other: `what` says which kinds collide. */
function collision(clash: readonly string[], what: string, fix: string): AgentError {
  return new AgentError(ErrorCodes.IDENTIFIER_COLLISION, `${what} ${clash.map((c) => `'${c}'`).join(', ')} collide${clash.length > 1 ? '' : 's'} with ${fix}`);
}

/**
 * Check that the request's identifiers, the connection's token names and (for paginated queries)
 * the pagination variables do not shadow each other or keys of the secret: each fills `{name}`.
 */
export function assertNoCollisions(conn: APIProxyConnection, type: QueryType, identifiers: Readonly<Record<string, string>>, secret: Secret, queries: readonly APIProxyQuery[]): void {
  const clash = Object.keys(identifiers).filter((k) => Object.hasOwn(secret, k));
  if (clash.length) {
    const many = clash.length > 1;
    throw collision(clash, `identifier name${many ? 's' : ''}`, `key${many ? 's' : ''} of the connection's secret; rename the identifier or the secret key`);
  }
  const tokenClash = Object.keys(conn.tokens ?? {}).filter((t) => Object.hasOwn(secret, t) || Object.hasOwn(identifiers, t));
  if (tokenClash.length) {
    throw collision(tokenClash, `token name${tokenClash.length > 1 ? 's' : ''}`, "a key of the connection's secret or an identifier of the request; rename the token");
  }
  if (type !== 'test' && queries.some((q) => q.paginate)) {
    const paged = PAGINATION_VARIABLES.filter((v) => Object.hasOwn(secret, v) || Object.hasOwn(identifiers, v));
    if (paged.length) {
      throw collision(paged, `pagination variable${paged.length > 1 ? 's' : ''}`, "a key of the connection's secret or an identifier of the request, which would fill the same placeholder; rename the key or identifier");
    }
  }
}

/** What one run of an APIProxy connection is made of. */
export interface ApiProxyRunOptions {
  readonly conn: APIProxyConnection;
  readonly type: QueryType;
  /** The type whose collision rules apply (pagination variables count outside `test`). Default `type`. */
  readonly collisionType?: QueryType;
  readonly identifiers: Readonly<Record<string, string>>;
  readonly secret: Secret;
  /** Refreshed once after a refusal. */
  readonly secrets: SecretsCache;
  /** The queries the run sends (for the collision check). */
  readonly queries: readonly APIProxyQuery[];
  readonly ctx: ApiProxyContext;
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly settled?: ConnectorRun['settled'];
}

/**
 * The state of one run of an APIProxy connection (a connection's queries, or a request source's list
 * and finish queries): collisions checked, and checked again on a refreshed secret; tokens scoped to it.
 */
export function makeApiProxyRun(o: ApiProxyRunOptions): ConnectionRun {
  const check = (secret: Secret) => assertNoCollisions(o.conn, o.collisionType ?? o.type, o.identifiers, secret, o.queries);
  check(o.secret);
  const run: ConnectionRun = {
    conn: o.conn,
    type: o.type,
    identifiers: o.identifiers,
    secret: o.secret,
    refreshSecret: async () => {
      const secret = await refreshSecretOf(run, o.secrets);
      check(secret);
      return secret;
    },
    tokens: makeTokenScope({
      conn: o.conn,
      cache: o.ctx.tokens,
      secret: () => run.secret,
      identifiers: o.identifiers,
      fetch: (name, spec, depValues, s) => fetchToken(run, name, spec, depValues, s),
    }),
    ctx: o.ctx,
    signal: o.signal,
    log: o.log,
    ...(o.settled && { settled: o.settled }),
  };
  return run;
}

/** What the APIProxy connector is built from. */
export interface ApiProxyDeps extends ApiProxyContext {
  readonly secrets: SecretsCache;
}

const queriesOfRun = (statements: ConnectorRun['statements']): APIProxyQuery[] => statements.map((s) => s.query as APIProxyQuery);

/** Build the APIProxy connector. */
export function makeApiProxyConnector(deps: ApiProxyDeps): Connector {
  return {
    async run(r) {
      const conn = r.conn as APIProxyConnection;
      const run = makeApiProxyRun({ ...r, conn, queries: queriesOfRun(r.statements), secrets: deps.secrets, ctx: deps });
      for (const s of r.statements) await runQuery(run, compileQuery(s.query as APIProxyQuery), s.label, s.consume);
    },

    plan(r) {
      const conn = r.conn as APIProxyConnection;
      assertNoCollisions(conn, r.type, r.identifiers, r.secret, queriesOfRun(r.statements));
      // The same composition as a run, sending nothing: each login before the first query that
      // needs it, tokens shown as <token name>, pages at their first variables.
      const names = new Set(Object.keys(conn.tokens ?? {}));
      const planned = new Set<string>();
      const out: PlannedStatement[] = [];
      const show = (label: string, q: CompiledQuery, vars: Record<string, string>) => {
        try {
          const values = { identifiers: { ...r.identifiers, ...vars }, secrets: r.secret };
          out.push({ query: label, request: renderMasked(q, values, tokensUsed(q.variables, names)) });
        } catch (err) {
          out.push({ query: label, error: asAgentError(err).toJSON() });
        }
      };
      for (const { label, query } of r.statements) {
        const q = compileQuery(query as APIProxyQuery);
        for (const name of tokenOrder(conn, tokensUsed(q.variables, names))) {
          if (planned.has(name)) continue;
          planned.add(name);
          show(`tokens.${name}`, compileQuery(conn.tokens![name]!.request), {});
        }
        show(label, q, firstPageVariables((query as APIProxyQuery).paginate));
      }
      return out;
    },

    async close() {
      // Dispatchers belong to the engine.
    },
  };
}
