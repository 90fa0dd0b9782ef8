import type { APIProxyConnection } from '../src/config/types.js';
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { validateConfig, listConfigProblems } from '../src/config/validate.js';
import { DEFAULT_AGENT_OPTIONS, DEFAULT_JOB_TIMEOUT_SECONDS } from '../src/config/normalize.js';
import { readSchemas, SCHEMA_FILES } from '../src/config/schemas.js';
import { AgentError } from '../src/errors.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/config/${name}`, import.meta.url), 'utf8'));
const wrap = (...connections: unknown[]) => ({ ...fixture('minimal.json'), connections });
const problemsOf = (raw: unknown) => listConfigProblems(raw);
const messageAt = (raw: unknown, path: string) => problemsOf(raw).filter((p) => p.path === path).map((p) => p.message);

describe('the JSON Schemas', () => {
  const schemas = readSchemas();

  it('are draft 2020-12 with $ids, and refer to each other', () => {
    for (const file of SCHEMA_FILES) {
      expect(schemas[file].$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(String(schemas[file].$id).endsWith(`/${file}`)).toBe(true);
    }
    const text = JSON.stringify(schemas);
    expect(text).toContain('"$ref":"connection.schema.json"');
    expect(text).toContain('"$ref":"apiproxy-query.schema.json"');
    // compile standalone in strict mode (strictRequired aside, see schemas.ts)
    const ajv = new Ajv2020({ strict: true, strictRequired: false, validateFormats: false });
    for (const s of Object.values(schemas)) ajv.addSchema(s);
    expect(() => ajv.getSchema(String(schemas['agent-config.schema.json'].$id))).not.toThrow();
  });

  it('describe every field', () => {
    const missing: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const n = node as Record<string, unknown>;
      if (n.properties) {
        for (const [key, sub] of Object.entries(n.properties as Record<string, Record<string, unknown>>)) {
          if (typeof sub.description !== 'string' || sub.description.length < 10) missing.push(`${at}/${key}`);
        }
      }
      for (const [k, v] of Object.entries(n)) walk(v, `${at}/${k}`);
    };
    for (const file of SCHEMA_FILES) walk(schemas[file], file);
    expect(missing).toEqual([]);
  });

  it('document the same defaults the loader applies', () => {
    const root = schemas['agent-config.schema.json'] as any;
    const agentProps = root.$defs.agentOptions.properties;
    const documented = Object.fromEntries(Object.entries(agentProps).map(([k, v]) => [k, (v as any).default]));
    expect(documented).toEqual({ ...DEFAULT_AGENT_OPTIONS });
    expect(root.properties.job_timeout_seconds.default).toBe(DEFAULT_JOB_TIMEOUT_SECONDS);
    const q = (schemas['apiproxy-query.schema.json'] as any).properties;
    expect(q.valid_response_codes.default).toEqual([200]);
    expect(q.fail_retry_response_codes.default).toEqual([]);
    const config = validateConfig(wrap(fixture('seed-connection.json')));
    expect((config.connections[0] as APIProxyConnection).queries.test?.[0].valid_response_codes).toEqual([200]);
  });
});

describe('fixtures', () => {
  it("the seed's Example Connection Object validates unchanged (only defaults added)", () => {
    const seed = fixture('seed-connection.json');
    const config = validateConfig(wrap(seed));
    const withDefaults = (q: Record<string, unknown>) => ({ valid_response_codes: [200], fail_retry_response_codes: [], ...q });
    expect(config.connections[0]).toEqual({
      ...seed,
      queries: {
        test: seed.queries.test.map(withDefaults),
        identifiers: { primary_phone_number: seed.queries.identifiers.primary_phone_number.map(withDefaults) },
        access: seed.queries.access.map(withDefaults),
        delete: seed.queries.delete.map(withDefaults),
        optout: seed.queries.optout.map(withDefaults),
      },
    });
    expect((config.connections[0] as APIProxyConnection).queries.delete?.[0].body).toBe('{{"email": "{email}"}}');
  });

  it('a realistic config with two connections validates', () => {
    const config = validateConfig(fixture('realistic.json'));
    expect(config.connections.map((c) => c.name)).toEqual(['User Service', 'Marketing Lists']);
    expect(config.connections[1].credentials_location).toBe('marketing-lists');
    expect(config.job_timeout_seconds).toBe(120);
    expect(config.agent.connection_concurrency).toBe(2);
    expect(config.agent.job_concurrency).toBe(DEFAULT_AGENT_OPTIONS.job_concurrency);
  });
});

describe('schema problems', () => {
  it('lists every problem at once, de-duplicated and sorted by path', () => {
    const seed = fixture('seed-connection.json');
    const raw = {
      connections: [
        { ...seed, mode: 'production', uuid: 'not-a-uuid', conector_type: 'APIProxy' },
        ...Array.from({ length: 10 }, (_, i) => ({ ...seed, name: `c${i}`, uuid: `00000000-0000-4000-8000-00000000000${i % 10}` })),
        {
          name: 'Broken',
          uuid: '11111111-1111-4111-8111-111111111111',
          capabilities: ['privacy/access', 'privacy/erase'],
          mode: 'live',
          connector_type: 'Foo',
          queries: { access: [{ url: 'https://x.example/{email}', verb: 'GET', verify_ssl: 'yes', verfiy_ssl: 'true' }] },
        },
      ],
      platform: { credentials_manager: { provider: 'Vault' } },
      job_timeout_seconds: 0,
      agent: { retries: 'three' },
      extra: true,
    };
    raw.connections[2] = { ...raw.connections[2], mode: 'x' };
    const err = (() => {
      try {
        validateConfig(raw, 'test config');
      } catch (e) {
        return e as AgentError;
      }
      throw new Error('expected CONFIG_INVALID');
    })();
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/^test config is invalid \(\d+ problems\):\n/);
    const paths = err.problems!.map((p) => p.path);
    expect(paths).toEqual([
      '/agent/retries',
      '/connections/0/conector_type',
      '/connections/0/mode',
      '/connections/0/uuid',
      '/connections/2/mode',
      '/connections/11/capabilities/1',
      '/connections/11/connector_type',
      '/connections/11/credentials_location',
      '/connections/11/queries/access/0/verfiy_ssl',
      '/connections/11/queries/access/0/verify_ssl',
      '/extra',
      '/job_timeout_seconds',
      '/platform/credentials_manager/provider',
    ]);
    expect(new Set(err.problems!.map((p) => `${p.path} ${p.message}`)).size).toBe(err.problems!.length);
    expect(err.message.split('\n')).toHaveLength(paths.length + 1);
  });

  it('required: names the field, where it goes and what it holds', () => {
    const conn = fixture('seed-connection.json');
    delete conn.queries.access[0].verb;
    delete conn.uuid;
    expect(messageAt(wrap(conn), '/connections/0/queries/access/0/verb')).toEqual([
      "add the required field 'verb': the HTTP method, any method token (GET, POST, PUT, PATCH, DELETE, ...). Normalised to upper case",
    ]);
    expect(messageAt(wrap(conn), '/connections/0/uuid')[0]).toMatch(/^add the required field 'uuid': the connection's UUID/);
    const noCreds = fixture('seed-connection.json');
    delete noCreds.credentials_location;
    expect(messageAt(wrap(noCreds), '/connections/0/credentials_location')[0]).toContain('credentials_arn is accepted as another name');
    expect(problemsOf(wrap(noCreds))).toHaveLength(1);
  });

  it('additionalProperties: unknown fields at every level, with the fields allowed there', () => {
    const conn = fixture('seed-connection.json');
    conn.queries.test[0].verfiy_ssl = 'true';
    conn.queries.tests = [];
    conn.Name = 'x';
    const raw = { ...wrap(conn), platform: { credentials_manager: { provider: 'JSONFile', region: 'x' } }, agent: { retires: 1, retry: 1 } };
    expect(messageAt(raw, '/connections/0/queries/test/0/verfiy_ssl')).toEqual([
      "unknown field 'verfiy_ssl' (did you mean 'verify_ssl'?); the fields of an APIProxy query are url, headers, body, verb, verify_ssl, valid_response_codes, fail_retry_response_codes, graphql, records, expect, paginate",
    ]);
    expect(messageAt(raw, '/connections/0/queries/tests')[0]).toMatch(/^unknown field 'tests' \(did you mean 'test'\?\); the fields of queries are test, identifiers, access, delete, optout$/);
    expect(messageAt(raw, '/connections/0/Name')[0]).toContain("(did you mean 'name'?); the fields of a connection are name, uuid,");
    expect(messageAt(raw, '/platform/credentials_manager/region')[0]).toBe(
      "unknown field 'region'; the fields of platform.credentials_manager are provider, options",
    );
    expect(messageAt(raw, '/agent/retires')[0]).toContain("(did you mean 'retries'?); the fields of agent are connection_concurrency,");
    expect(messageAt(raw, '/agent/retry')[0]).toMatch(/^unknown field 'retry'; the fields of agent are /);
  });

  it('connector_type: an unknown one is rejected with the supported list', () => {
    const conn = { ...fixture('seed-connection.json'), connector_type: 'Foo' };
    expect(messageAt(wrap(conn), '/connections/0/connector_type')).toEqual(["connector_type 'Foo' is not supported; supported: APIProxy, Postgres, MySQL, Redshift, SSH (accepted but not run: Snowflake, BigQuery, SQLServer, OracleDB)"]);
  });

  it('enum, type, minItems and format messages say what to write', () => {
    const conn = fixture('seed-connection.json');
    conn.mode = 'prod';
    conn.capabilities = [];
    conn.uuid = '44d9e703';
    conn.queries.access[0].verify_ssl = 'yes';
    conn.queries.access[0].valid_response_codes = [200, '404', 700];
    conn.queries.access[0].headers = { 'X-Count': 3 };
    conn.queries.delete = { url: 'https://x.example' };
    const raw = { ...wrap(conn), callback_url: 'not a url', redis_url: 'localhost:6379' };
    expect(messageAt(raw, '/connections/0/mode')).toEqual([`'mode' must be "live" or "test"`]);
    expect(messageAt(raw, '/connections/0/capabilities')).toEqual([
      "'capabilities' must list at least one of privacy/access, privacy/delete, privacy/optout, privacy/identifiers",
    ]);
    expect(messageAt(raw, '/connections/0/uuid')).toEqual([`'uuid' must be a UUID, e.g. "44d9e703-b8cf-40a8-a138-3cc110319b0d"`]);
    expect(messageAt(raw, '/connections/0/queries/access/0/verify_ssl')).toEqual([`'verify_ssl' must be "true" or "false"`]);
    expect(messageAt(raw, '/connections/0/queries/access/0/valid_response_codes/1')).toEqual([
      "each of 'valid_response_codes' must be a whole number",
    ]);
    expect(messageAt(raw, '/connections/0/queries/access/0/valid_response_codes/2')).toEqual([
      "each of 'valid_response_codes' must be an HTTP status code, from 100 to 599",
    ]);
    expect(messageAt(raw, '/connections/0/queries/access/0/headers/X-Count')).toEqual([
      "header 'X-Count' must be a string (write numbers and booleans in quotes)",
    ]);
    expect(messageAt(raw, '/connections/0/queries/delete')).toEqual(["'delete' must be a JSON array of queries"]);
    expect(messageAt(raw, '/callback_url')).toEqual([`'callback_url' must be an absolute http:// or https:// URL, e.g. "https://dsr.example.com/callback"`]);
    expect(messageAt(raw, '/redis_url')).toEqual([`'redis_url' must be a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"`]);
  });

  it('a config that is not an object, or lacks its required parts', () => {
    expect(problemsOf([])).toEqual([{ path: '', message: 'the config must be a JSON object' }]);
    expect(problemsOf({}).map((p) => p.path)).toEqual(['/connections', '/platform']);
    expect(problemsOf({ connections: [], platform: {} }).map((p) => p.path)).toEqual(['/platform/credentials_manager']);
  });

  it('duplicate capabilities name the items', () => {
    const conn = { ...fixture('seed-connection.json'), capabilities: ['privacy/access', 'privacy/delete', 'privacy/access'] };
    expect(messageAt(wrap(conn), '/connections/0/capabilities')).toEqual([
      "'capabilities' lists the same value twice (items 0 and 2); list each once",
    ]);
  });
});
