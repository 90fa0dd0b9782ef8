/**
 * DataGrail's database connection examples through the whole engine (config validation, secrets,
 * job, reports, dry run) against the local PostgreSQL and MariaDB, next to an APIProxy connection:
 * a DataGrail config that mixes types runs unchanged.
 */
import { describe, it, expect, afterEach } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { makeTestAgent, connection, query, type TestAgent } from './helpers/agent.js';
import { startTarget, json, type Target } from './helpers/target.js';
import { makeLocalSink } from '../src/storage/local.js';
import { listConfigProblems } from '../src/config/validate.js';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startSshServer } from './helpers/ssh-server.js';

const cleanups: Array<() => Promise<void>> = [];
let agent: TestAgent | undefined;
let target: Target | undefined;
afterEach(async () => {
  await agent?.close();
  await target?.close();
  agent = target = undefined;
  while (cleanups.length) await cleanups.pop()!();
});

const PETER = 'peter@initech.com';
const SAMIR = 'samir@initech.com';

/** A Postgres database shaped like DataGrail's example: a customers table and a dsr() procedure. */
async function postgresDb(): Promise<string> {
  const name = `dsr_e2e_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  cleanups.push(async () => {
    const a = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await a.end();
  });
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: name });
  await c.connect();
  await c.query(`
    CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL, phone text, profile jsonb, created_at timestamptz);
    INSERT INTO customers (email, phone, profile, created_at) VALUES
      ('${PETER}', '+1 555 0100', '{"company": "Initech", "stapler": {"color": "red"}}', '2026-10-01T09:30:00Z'),
      ('${SAMIR}', '+1 555 0101', '{"company": "Initech"}', '2026-10-02T09:30:00Z');
    CREATE PROCEDURE dsr(action text, subject text, INOUT result jsonb DEFAULT NULL) LANGUAGE plpgsql AS $$
    BEGIN
      IF action = 'access' THEN
        SELECT jsonb_build_object('email', email, 'phone', phone, 'profile', profile) INTO result FROM customers WHERE email = subject;
      ELSIF action = 'delete' THEN
        DELETE FROM customers WHERE email = subject;
      END IF;
    END $$;`);
  await c.end();
  return name;
}

async function postgresRows(db: string, email: string): Promise<number> {
  const c = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: db });
  await c.connect();
  const { rows } = await c.query('SELECT count(*)::int AS n FROM customers WHERE email = $1', [email]);
  await c.end();
  return rows[0].n;
}

async function mariaDb(): Promise<string> {
  const name = `dsr_e2e_${randomBytes(5).toString('hex')}`;
  const admin = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test', multipleStatements: true });
  await admin.query(`CREATE DATABASE ${name}; USE ${name};
    CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL, user_id VARCHAR(40), signed_up DATETIME) ENGINE=InnoDB;
    INSERT INTO users (email, user_id, signed_up) VALUES ('${PETER}', 'u-1', '2026-09-01 10:00:00'), ('${PETER}', 'u-2', '2026-09-02 10:00:00'), ('${SAMIR}', 'u-3', NULL);`);
  await admin.end();
  cleanups.push(async () => {
    const a = await mysql.createConnection({ host: '127.0.0.1', user: 'root', database: 'test' });
    await a.query(`DROP DATABASE IF EXISTS ${name}`);
    await a.end();
  });
  return name;
}

function dbConnection(type: string, queries: Record<string, unknown>, credentials_location: string, capabilities: string[]): Record<string, unknown> {
  return {
    name: `${type} ${randomBytes(3).toString('hex')}`,
    uuid: `00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`,
    capabilities,
    mode: 'live',
    connector_type: type,
    queries,
    credentials_location,
  };
}

describe('database connections through the engine', () => {
  it("runs DataGrail's Postgres and MySQL examples next to an APIProxy connection: access, identifiers, delete", async () => {
    const pgDb = await postgresDb();
    const myDb = await mariaDb();
    target = await startTarget((_req, res) => json(res, 200, [{ source: 'api' }]));
    const postgres = dbConnection(
      'Postgres',
      {
        identifiers: { phone_number: ['SELECT phone FROM customers WHERE email = %(email)s'] },
        access: ["call dsr('access', %(email)s)", 'SELECT email, created_at FROM customers WHERE email = %(email)s'],
        delete: ["CALL dsr('delete', %(email)s)"],
      },
      'pg',
      ['privacy/access', 'privacy/identifiers', 'privacy/delete'],
    );
    const mysqlConn = dbConnection(
      'MySQL',
      { identifiers: { user_id: ['SELECT user_id FROM users WHERE email = %(email)s'] }, access: ['SELECT * FROM users WHERE email = %(email)s ORDER BY id'] },
      'my',
      ['privacy/access', 'privacy/identifiers'],
    );
    const api = connection({ access: [query(`${target.url}/users?email={email}`)] });
    agent = makeTestAgent([postgres, mysqlConn, api], {
      secrets: {
        default: { credentials: 'x' },
        pg: { user: 'postgres', password: '', host: '127.0.0.1', port: '5432', dbname: pgDb },
        my: { user: 'root', password: '', server: '127.0.0.1', port: '3306', database: myDb },
      },
    });

    const ids = await agent.engine.run({ type: 'identifiers', identifiers: { email: PETER } });
    expect(ids.status).toBe('succeeded');
    expect(ids.connections.find((c) => c.uuid === postgres.uuid)!.identifiers).toEqual({ phone_number: ['+1 555 0100'] });
    expect(ids.connections.find((c) => c.uuid === mysqlConn.uuid)!.identifiers).toEqual({ user_id: ['u-1', 'u-2'] });

    const out = join(agent.dir, 'out');
    const access = await agent.engine.run({ type: 'access', identifiers: { email: PETER } }, { sink: makeLocalSink(out) });
    expect(access.status).toBe('succeeded');
    const pgDir = join(out, postgres.uuid as string);
    expect(readdirSync(pgDir).sort()).toEqual(['report_1.csv', 'report_2.csv']);
    // jsonb nests like a JSON response; timestamps are ISO 8601.
    expect(readFileSync(join(pgDir, 'report_1.csv'), 'utf8')).toBe(
      `result_email,${PETER}\nresult_phone,+1 555 0100\nresult_profile_company,Initech\nresult_profile_stapler_color,red\n`,
    );
    expect(readFileSync(join(pgDir, 'report_2.csv'), 'utf8')).toBe(`email,${PETER}\ncreated_at,2026-10-01T09:30:00.000Z\n`);
    const myDir = join(out, mysqlConn.uuid as string);
    expect(readdirSync(myDir).sort()).toEqual(['report_1.csv', 'report_2.csv']);
    expect(readFileSync(join(myDir, 'report_1.csv'), 'utf8')).toMatch(new RegExp(`^id,\\d+\\nemail,${PETER}\\nuser_id,u-1\\nsigned_up,2026-09-01T10:00:00.000Z\\n$`));
    expect(readdirSync(join(out, api.uuid as string))).toEqual(['report_1.csv']);

    const del = await agent.engine.run({ type: 'delete', identifiers: { email: PETER } });
    expect(del.status).toBe('succeeded');
    expect(await postgresRows(pgDb, PETER)).toBe(0);
    expect(await postgresRows(pgDb, SAMIR)).toBe(1);

    // Health checks: no test queries configured, so a trivial round trip.
    const health = await agent.engine.test([postgres.name as string, mysqlConn.name as string]);
    expect(health.map((h) => h.healthy)).toEqual([true, true]);
  });

  it("runs DataGrail's Redshift (Postgres protocol, `database` key) and SSH examples", async () => {
    const pgDb = await postgresDb();
    const ssh = await startSshServer();
    cleanups.push(() => ssh.close());
    // The SSH host's export script: prints the person's records as a JSON array on stdout.
    const dir = mkdtempSync(join(tmpdir(), 'dsr-ssh-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'dsr-export');
    writeFileSync(script, `#!/bin/sh\nif [ "$1" = access ]; then printf '[{"email": "%s", "plan": "gold"}]' "$2"; else echo "deleted $2" >&2; fi\n`);
    chmodSync(script, 0o755);
    const redshift = dbConnection('Redshift', { access: ['SELECT email, phone FROM customers WHERE email = %(email)s'] }, 'rs', ['privacy/access']);
    const sshConn = dbConnection('SSH', { access: [`${script} access {email}`], delete: [`${script} delete {email}`] }, 'ssh', ['privacy/access', 'privacy/delete']);
    agent = makeTestAgent([redshift, sshConn], {
      secrets: {
        rs: { user: 'postgres', password: '', host: '127.0.0.1', port: '5432', database: pgDb, sslmode: 'disable' },
        ssh: ssh.secret(),
      },
    });
    const out = join(agent.dir, 'out');
    const access = await agent.engine.run({ type: 'access', identifiers: { email: PETER } }, { sink: makeLocalSink(out) });
    expect(access.status).toBe('succeeded');
    expect(readFileSync(join(out, redshift.uuid as string, 'report_1.csv'), 'utf8')).toBe(`email,${PETER}\nphone,+1 555 0100\n`);
    expect(readFileSync(join(out, sshConn.uuid as string, 'report_1.csv'), 'utf8')).toBe(`email,${PETER}\nplan,gold\n`);
    expect((await agent.engine.run({ type: 'delete', identifiers: { email: "x'; touch /tmp/pwned #" } })).status).toBe('succeeded');
    expect(ssh.execs.at(-1)!.command).toBe(`${script} delete 'x'\\''; touch /tmp/pwned #'`);
  });

  it('a hostile identifier is one bound value: it matches nothing and changes nothing', async () => {
    const pgDb = await postgresDb();
    const postgres = dbConnection('Postgres', { access: ['SELECT * FROM customers WHERE email = %(email)s'], delete: ['DELETE FROM customers WHERE email = %(email)s'] }, 'pg', ['privacy/access', 'privacy/delete']);
    agent = makeTestAgent([postgres], { secrets: { pg: { user: 'postgres', password: '', host: '127.0.0.1', dbname: pgDb } } });
    for (const email of ["' OR 1=1 --", '%(email)s', '$1', '\\', `${PETER}' OR 'a'='a`]) {
      const access = await agent.engine.run({ type: 'access', identifiers: { email } }, { sink: { put: async () => 'x' } });
      expect(access.status).toBe('succeeded');
      expect(access.connections[0]!.reports).toEqual([]);
      expect((await agent.engine.run({ type: 'delete', identifiers: { email } })).status).toBe('succeeded');
    }
    expect(await postgresRows(pgDb, PETER)).toBe(1);
    expect(await postgresRows(pgDb, SAMIR)).toBe(1);
  });

  it('reports each statement to the metrics hooks like an HTTP query, and a failed one once', async () => {
    const pgDb = await postgresDb();
    const settled: Array<{ connection: string; type: string; outcome: string }> = [];
    const postgres = dbConnection(
      'Postgres',
      { access: ['SELECT email FROM customers WHERE email = %(email)s', 'SELECT phone FROM customers WHERE email = %(email)s'], delete: ['DELETE FROM no_such_table WHERE email = %(email)s'] },
      'pg',
      ['privacy/access', 'privacy/delete'],
    );
    agent = makeTestAgent([postgres], {
      secrets: { pg: { user: 'postgres', password: '', host: '127.0.0.1', dbname: pgDb } },
      deps: { hooks: { querySettled: (e) => void settled.push({ connection: e.connection, type: e.type, outcome: e.outcome }) } },
    });
    await agent.engine.run({ type: 'access', identifiers: { email: PETER } }, { sink: { put: async () => 'r' } });
    const del = await agent.engine.run({ type: 'delete', identifiers: { email: PETER } });
    expect(del.connections[0]!.error?.code).toBe('DATABASE_ERROR');
    expect(del.connections[0]!.error?.message).toMatch(/SQLSTATE 42P01/);
    const name = postgres.name as string;
    expect(settled).toEqual([
      { connection: name, type: 'access', outcome: 'ok' },
      { connection: name, type: 'access', outcome: 'ok' },
      { connection: name, type: 'delete', outcome: 'error' },
    ]);
  });

  it.each(['Peter  Gibbons', 'Peter\tGibbons', ' Peter Gibbons'])('masks a server message that quotes the identifier %j before reshaping it', async (name) => {
    const pgDb = await postgresDb();
    const postgres = dbConnection('Postgres', { access: ['SELECT %(name)s::uuid AS id'] }, 'pg', ['privacy/access']);
    agent = makeTestAgent([postgres], { secrets: { pg: { user: 'postgres', password: '', host: '127.0.0.1', dbname: pgDb } } });
    const result = await agent.engine.run({ type: 'access', identifiers: { email: PETER, name } }, { sink: { put: async () => 'r' } });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('DATABASE_ERROR');
    expect(error.message).toMatch(/SQLSTATE 22P02.*"\*\*\*"/);
    expect(error.message).not.toMatch(/Peter|Gibbons/);
  });

  it('masks an SSH command\'s stderr before taking its first line and trimming it', async () => {
    const ssh = await startSshServer();
    cleanups.push(() => ssh.close());
    const conn = dbConnection('SSH', { delete: [`sh -c 'echo "$0 is not a customer" >&2; exit 3' {name}`] }, 'ssh', ['privacy/delete']);
    agent = makeTestAgent([conn], { secrets: { ssh: ssh.secret() } });
    const result = await agent.engine.run({ type: 'delete', identifiers: { email: PETER, name: '  Peter Gibbons' } });
    const error = result.connections[0]!.error!;
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('*** is not a customer');
    expect(error.message).not.toMatch(/Peter|Gibbons/);
  });

  it('--dry-run lists each statement with its parameters by name, values masked, and opens no connection', async () => {
    const postgres = dbConnection('Postgres', { access: ['SELECT * FROM customers WHERE email = %(email)s AND phone = %(phone_number)s OR email = %(email)s'] }, 'pg', ['privacy/access']);
    // An unreachable port: planning must not connect.
    agent = makeTestAgent([postgres], { secrets: { pg: { user: 'postgres', password: 'pw-Secret', host: '127.0.0.1', port: '9', dbname: 'nothing' } } });
    const plan = await agent.engine.plan({ type: 'access', identifiers: { email: PETER, phone_number: '+1 555 0100' } });
    expect(plan).toEqual([
      {
        connection: postgres.name,
        uuid: postgres.uuid,
        query: 'access[0]',
        statement: 'SELECT * FROM customers WHERE email = $1 AND phone = $2 OR email = $1',
        parameters: { email: '****', phone_number: '****' },
      },
    ]);
    expect(JSON.stringify(plan)).not.toContain(PETER);
    expect(JSON.stringify(plan)).not.toContain('pw-Secret');
  });

  it("accepts DataGrail's other types so the config loads, and fails only those connections with CONNECTOR_UNSUPPORTED", async () => {
    target = await startTarget((_req, res) => json(res, 200, [{ a: 1 }]));
    // Its secret does not even exist: the type is what fails it, first.
    const snowflake = dbConnection('Snowflake', { access: ['SELECT * FROM users WHERE email = %(email)s'] }, 'nowhere', ['privacy/access']);
    const oracle = dbConnection('OracleDB', { access: ['SELECT * FROM users WHERE email = :email'] }, 'x', ['privacy/access']);
    const api = connection({ access: [query(`${target.url}/a`)] });
    agent = makeTestAgent([snowflake, oracle, api], { secrets: { default: { credentials: 'x' }, x: { user: 'u' } } });
    const result = await agent.engine.run({ type: 'access', identifiers: { email: PETER } }, { sink: { put: async () => 'r' } });
    expect(result.status).toBe('partial');
    const byName = Object.fromEntries(result.connections.map((c) => [c.name, c]));
    expect(byName[snowflake.name as string]!.error?.code).toBe('CONNECTOR_UNSUPPORTED');
    expect(byName[snowflake.name as string]!.error?.message).toMatch(/Snowflake .* runs APIProxy, Postgres, MySQL, Redshift, SSH/);
    expect(byName[oracle.name as string]!.error?.code).toBe('CONNECTOR_UNSUPPORTED');
    expect(byName[api.name as string]!.status).toBe('succeeded');
    const health = await agent.engine.test([snowflake.name as string]);
    expect(health[0]!.error?.code).toBe('CONNECTOR_UNSUPPORTED');
  });

  it('checks statements at load: placeholder style, unbalanced %(, names; and tokens only on APIProxy', () => {
    const bad = dbConnection(
      'MySQL',
      { access: ['SELECT * FROM t WHERE email = %s', 'SELECT * FROM t WHERE email = %(email', "SELECT * FROM t WHERE a LIKE '5%' AND e = %(email)s", 'SELECT %(e-mail)s', 'SELECT 1 WHERE a = %(email)d'], delete: ['DELETE FROM t WHERE e = %(email)s'] },
      'x',
      ['privacy/access', 'privacy/delete'],
    );
    const ssh = { ...dbConnection('SSH', { access: ['/opt/dsr/export {email', 'echo `lookup {email}`', "/opt/dsr/export --email '{email}'"] }, 'x', ['privacy/access']), tokens: {} };
    const problems = listConfigProblems({
      connections: [bad, ssh],
      platform: { credentials_manager: { provider: 'JSONFile', options: { filename: 's.json' } } },
    });
    const at = (p: string) => problems.filter((x) => x.path === p).map((x) => x.message);
    expect(at('/connections/0/queries/access/0')[0]).toMatch(/positional placeholder '%s'.*use a named one such as %\(email\)s/);
    expect(at('/connections/0/queries/access/1')[0]).toMatch(/unbalanced '%\('/);
    expect(at('/connections/0/queries/access/2')[0]).toMatch(/lone '%'.*'%%'/);
    expect(at('/connections/0/queries/access/3')[0]).toMatch(/not an identifier name/);
    expect(at('/connections/0/queries/access/4')[0]).toMatch(/only %\(name\)s is supported/);
    expect(at('/connections/0/queries/delete/0')).toEqual([]);
    expect(at('/connections/1/queries/access/0')[0]).toMatch(/unterminated placeholder/);
    expect(at('/connections/1/queries/access/1')[0]).toMatch(/inside `…` command substitution/);
    expect(at('/connections/1/queries/access/2')).toEqual([]);
    expect(at('/connections/1/tokens')[0]).toMatch(/tokens apply to APIProxy connections only/);
  });
});
