/**
 * What the Postgres and Redshift connector needs besides the driver: the secret's settings and their
 * TLS options, SQLSTATE condition names, how a connection failure is classified (retry or not), the
 * server's error text as a safe message, and the protocol's out-of-band cancel request. Nothing
 * here loads `pg`.
 */
import { createHash } from 'node:crypto';
import { connect as netConnect, isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { AgentError, ErrorCodes, errorCodeOf } from '../errors.js';
import type { Mask } from '../engine/mask.js';

/** The two flavours speaking the Postgres protocol. */
export type PgFlavor = 'Postgres' | 'Redshift';

/** The `sslmode` values a secret may carry. */
export const SSL_MODES = ['disable', 'require', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Connection settings read from a secret. */
export interface PgSettings {
  readonly flavor: PgFlavor;
  readonly user: string;
  readonly password: string;
  /** A host name, an IP address, or a Unix socket directory (starts with `/`). */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** undefined: pg's default (no TLS unless the PGSSLMODE environment variable says otherwise). */
  readonly sslmode: SslMode | undefined;
  /** PEM text of the CA certificate(s) the server's certificate must chain to. */
  readonly sslCa: string | undefined;
}

/** The key naming the database: DataGrail's Postgres secret says `dbname`, its Redshift secret `database`. */
export function databaseKey(flavor: PgFlavor): 'dbname' | 'database' {
  return flavor === 'Redshift' ? 'database' : 'dbname';
}

/** Default port of each flavour. */
export function defaultPort(flavor: PgFlavor): number {
  return flavor === 'Redshift' ? 5439 : 5432;
}

function secretError(flavor: PgFlavor, message: string): AgentError {
  return new AgentError(ErrorCodes.SECRET_INVALID, `${flavor} connection secret: ${message}`);
}

/**
 * Read and check a connection's secret. Keys: `user`, `password`, `host`, `dbname` (Redshift:
 * `database`) are required; `port` (default 5432, Redshift 5439), `sslmode` and `ssl_ca` are
 * optional; other keys are ignored, except a misspelt TLS key or the other flavour's database key,
 * which are refused (a misspelt `sslmode` must not silently mean "no TLS").
 * Throws AgentError SECRET_INVALID naming the key, never a value.
 */
export function parseSecret(secret: Readonly<Record<string, unknown>>, flavor: PgFlavor): PgSettings {
  const dbKey = databaseKey(flavor);
  const known = new Set(['user', 'password', 'host', 'port', dbKey, 'sslmode', 'ssl_ca']);
  for (const key of Object.keys(secret)) {
    if (known.has(key)) continue;
    // Other keys are ignored (managed secrets carry extras such as "engine"), except what looks like a
    // misspelt TLS setting or the other flavour's database key: those must not silently mean "no TLS" or "no database".
    const other = databaseKey(flavor === 'Redshift' ? 'Postgres' : 'Redshift');
    if (key === other) {
      throw secretError(flavor, `unknown key "${key}"; ${flavor} names the database "${dbKey}"`);
    }
    if (/ssl|tls/i.test(key)) throw secretError(flavor, `unknown key "${key.slice(0, 64)}" (TLS keys are sslmode and ssl_ca)`);
  }
  const text = (key: string, required: boolean, allowEmpty = false): string | undefined => {
    const v = secret[key];
    if (v === undefined || v === null) {
      if (required) throw secretError(flavor, `missing required key "${key}"`);
      return undefined;
    }
    if (typeof v !== 'string' && typeof v !== 'number') throw secretError(flavor, `key "${key}" must be a string`);
    const s = String(v);
    if (!allowEmpty && s.trim() === '') throw secretError(flavor, `key "${key}" is empty`);
    return s;
  };
  const user = text('user', true)!;
  const password = text('password', true, true)!;
  const host = text('host', true)!.trim();
  const database = text(dbKey, true)!;
  const portText = text('port', false);
  let port = defaultPort(flavor);
  if (portText !== undefined) {
    if (!/^\s*\d{1,5}\s*$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw secretError(flavor, 'key "port" must be a port number (1-65535)');
    }
    port = Number(portText);
  }
  const modeText = text('sslmode', false);
  let sslmode: SslMode | undefined;
  if (modeText !== undefined) {
    const m = modeText.trim().toLowerCase();
    if (!(SSL_MODES as readonly string[]).includes(m)) throw secretError(flavor, `key "sslmode" must be one of ${SSL_MODES.join(', ')}`);
    sslmode = m as SslMode;
  }
  const sslCa = text('ssl_ca', false);
  if (sslCa !== undefined && !sslCa.includes('-----BEGIN CERTIFICATE-----')) {
    throw secretError(flavor, 'key "ssl_ca" must be PEM text (-----BEGIN CERTIFICATE----- …)');
  }
  if (sslCa !== undefined && sslmode === 'disable') {
    throw secretError(flavor, 'key "ssl_ca" is set but "sslmode" is disable; remove one of them');
  }
  if (sslmode === undefined) {
    // Redshift: encrypted by default. Postgres: a CA given means "verify against it".
    if (flavor === 'Redshift') sslmode = 'require';
    else if (sslCa !== undefined) sslmode = 'verify-full';
  }
  return { flavor, user, password, host, port, database, sslmode, sslCa };
}

/**
 * The `ssl` option for pg: undefined (pg's default), false, or TLS options.
 * - `disable`: no TLS.
 * - `require`: TLS, the certificate is not verified (as libpq's `require`); with `ssl_ca` its chain
 *   is verified against that CA, but not the host name (libpq's `verify-ca`).
 * - `verify-full`: TLS, the chain is verified (against `ssl_ca`, or the system's CAs) and the
 *   certificate must name the host.
 */
export function sslOption(s: PgSettings): false | ConnectionOptions | undefined {
  switch (s.sslmode) {
    case undefined:
      return undefined;
    case 'disable':
      return false;
    case 'require':
      return s.sslCa === undefined
        ? { rejectUnauthorized: false }
        : { rejectUnauthorized: true, ca: s.sslCa, checkServerIdentity: () => undefined };
    case 'verify-full':
      return {
        rejectUnauthorized: true,
        ...(s.sslCa === undefined ? {} : { ca: s.sslCa }),
        ...(isIP(s.host) || s.host.startsWith('/') ? {} : { servername: s.host }),
      };
  }
}

/** Pool (and pool key) identity of settings: a digest, so no key holds the password in clear. */
export function settingsFingerprint(s: PgSettings): string {
  return createHash('sha256')
    .update(JSON.stringify([s.flavor, s.user, s.password, s.host, s.port, s.database, s.sslmode ?? '', s.sslCa ?? '']))
    .digest('hex')
    .slice(0, 32);
}

/**
 * SQLSTATE → condition name (PostgreSQL's errcodes, the ones a DSR statement or a connection
 * attempt may meet); other codes are named by their class.
 */
const CONDITIONS: Readonly<Record<string, string>> = {
  '01000': 'warning', '02000': 'no_data', '03000': 'sql_statement_not_yet_complete',
  '08000': 'connection_exception', '08003': 'connection_does_not_exist', '08006': 'connection_failure',
  '08001': 'sqlclient_unable_to_establish_sqlconnection', '08004': 'sqlserver_rejected_establishment_of_sqlconnection',
  '08007': 'transaction_resolution_unknown', '08P01': 'protocol_violation',
  '09000': 'triggered_action_exception', '0A000': 'feature_not_supported', '0B000': 'invalid_transaction_initiation',
  '0L000': 'invalid_grantor', '0LP01': 'invalid_grant_operation', '0P000': 'invalid_role_specification',
  '20000': 'case_not_found', '21000': 'cardinality_violation',
  '22000': 'data_exception', '2202E': 'array_subscript_error', '22021': 'character_not_in_repertoire',
  '22008': 'datetime_field_overflow', '22012': 'division_by_zero', '22005': 'error_in_assignment',
  '22015': 'interval_field_overflow', '22018': 'invalid_character_value_for_cast', '22007': 'invalid_datetime_format',
  '22025': 'invalid_escape_sequence', '22023': 'invalid_parameter_value', '2201B': 'invalid_regular_expression',
  '22009': 'invalid_time_zone_displacement_value', '22004': 'null_value_not_allowed',
  '22003': 'numeric_value_out_of_range', '22026': 'string_data_length_mismatch', '22001': 'string_data_right_truncation',
  '22011': 'substring_error', '22027': 'trim_error', '22024': 'unterminated_c_string',
  '2200F': 'zero_length_character_string', '22P01': 'floating_point_exception', '22P02': 'invalid_text_representation',
  '22P03': 'invalid_binary_representation', '22P05': 'untranslatable_character', '2200N': 'invalid_xml_content',
  '22030': 'duplicate_json_object_key_value', '22032': 'invalid_json_text',
  '23000': 'integrity_constraint_violation', '23001': 'restrict_violation', '23502': 'not_null_violation',
  '23503': 'foreign_key_violation', '23505': 'unique_violation', '23514': 'check_violation', '23P01': 'exclusion_violation',
  '24000': 'invalid_cursor_state', '25000': 'invalid_transaction_state', '25001': 'active_sql_transaction',
  '25006': 'read_only_sql_transaction', '25P01': 'no_active_sql_transaction', '25P02': 'in_failed_sql_transaction',
  '25P03': 'idle_in_transaction_session_timeout', '26000': 'invalid_sql_statement_name',
  '27000': 'triggered_data_change_violation', '28000': 'invalid_authorization_specification', '28P01': 'invalid_password',
  '2B000': 'dependent_privilege_descriptors_still_exist', '2BP01': 'dependent_objects_still_exist',
  '2D000': 'invalid_transaction_termination', '2F000': 'sql_routine_exception',
  '2F005': 'function_executed_no_return_statement', '2F002': 'modifying_sql_data_not_permitted',
  '2F003': 'prohibited_sql_statement_attempted', '2F004': 'reading_sql_data_not_permitted',
  '34000': 'invalid_cursor_name', '38000': 'external_routine_exception', '39000': 'external_routine_invocation_exception',
  '3B000': 'savepoint_exception', '3B001': 'invalid_savepoint_specification',
  '3D000': 'invalid_catalog_name', '3F000': 'invalid_schema_name',
  '40000': 'transaction_rollback', '40002': 'transaction_integrity_constraint_violation',
  '40001': 'serialization_failure', '40003': 'statement_completion_unknown', '40P01': 'deadlock_detected',
  '42000': 'syntax_error_or_access_rule_violation', '42601': 'syntax_error', '42501': 'insufficient_privilege',
  '42846': 'cannot_coerce', '42803': 'grouping_error', '42P20': 'windowing_error', '42P19': 'invalid_recursion',
  '42830': 'invalid_foreign_key', '42602': 'invalid_name', '42622': 'name_too_long', '42939': 'reserved_name',
  '42804': 'datatype_mismatch', '42P18': 'indeterminate_datatype', '42P21': 'collation_mismatch',
  '42P22': 'indeterminate_collation', '42809': 'wrong_object_type', '428C9': 'generated_always',
  '42703': 'undefined_column', '42883': 'undefined_function', '42P01': 'undefined_table', '42P02': 'undefined_parameter',
  '42704': 'undefined_object', '42701': 'duplicate_column', '42P03': 'duplicate_cursor', '42P04': 'duplicate_database',
  '42723': 'duplicate_function', '42P05': 'duplicate_prepared_statement', '42P06': 'duplicate_schema',
  '42P07': 'duplicate_table', '42712': 'duplicate_alias', '42710': 'duplicate_object', '42702': 'ambiguous_column',
  '42725': 'ambiguous_function', '42P08': 'ambiguous_parameter', '42P09': 'ambiguous_alias',
  '42P10': 'invalid_column_reference', '42611': 'invalid_column_definition', '42P13': 'invalid_function_definition',
  '42P16': 'invalid_table_definition', '42P17': 'invalid_object_definition',
  '44000': 'with_check_option_violation',
  '53000': 'insufficient_resources', '53100': 'disk_full', '53200': 'out_of_memory', '53300': 'too_many_connections',
  '53400': 'configuration_limit_exceeded', '54000': 'program_limit_exceeded', '54001': 'statement_too_complex',
  '54011': 'too_many_columns', '54023': 'too_many_arguments',
  '55000': 'object_not_in_prerequisite_state', '55006': 'object_in_use', '55P02': 'cant_change_runtime_param',
  '55P03': 'lock_not_available', '57000': 'operator_intervention', '57014': 'query_canceled',
  '57P01': 'admin_shutdown', '57P02': 'crash_shutdown', '57P03': 'cannot_connect_now', '57P04': 'database_dropped',
  '58000': 'system_error', '58030': 'io_error', '58P01': 'undefined_file', '58P02': 'duplicate_file',
  '72000': 'snapshot_too_old', 'F0000': 'config_file_error', 'HV000': 'fdw_error',
  'P0000': 'plpgsql_error', 'P0001': 'raise_exception', 'P0002': 'no_data_found', 'P0003': 'too_many_rows',
  'P0004': 'assert_failure', 'XX000': 'internal_error', 'XX001': 'data_corrupted', 'XX002': 'index_corrupted',
};

/** The condition name of a SQLSTATE (`23503` → `foreign_key_violation`), else its class's (`class 22: data_exception`). */
export function conditionName(sqlstate: string): string {
  const exact = CONDITIONS[sqlstate];
  if (exact) return exact;
  const cls = CONDITIONS[`${sqlstate.slice(0, 2)}000`];
  return cls ? `class ${sqlstate.slice(0, 2)}: ${cls}` : 'unknown condition';
}

/** True for a five-character SQLSTATE (what a server error carries), as opposed to a Node errno code. */
export function isSqlstate(code: unknown): code is string {
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** The fields of a server error (pg's DatabaseError) this module reads. */
interface ServerErrorLike {
  readonly message: string;
  readonly code?: string;
  readonly detail?: string;
  readonly hint?: string;
}


/**
 * A failed statement as DATABASE_ERROR: `<label> failed: SQLSTATE 23503 (foreign_key_violation):
 * <message>; DETAIL: <detail>; HINT: <hint>`. The server's texts pass through `mask` (they may echo
 * an identifier value, e.g. `Key (email)=(…)`); parameter values are never added.
 */
export function statementError(label: string, err: unknown, mask: Mask): AgentError {
  const e = (err && typeof err === 'object' ? err : {}) as ServerErrorLike;
  const code = errorCodeOf(err);
  const text = (s: unknown): string => mask(String(s)).replace(/\s+/g, ' ').trim().slice(0, 2000); // masked before anything reshapes it
  if (isSqlstate(code)) {
    let msg = `${label} failed: SQLSTATE ${code} (${conditionName(code)}): ${text(e.message)}`;
    if (e.detail) msg += `; DETAIL: ${text(e.detail)}`;
    if (e.hint) msg += `; HINT: ${text(e.hint)}`;
    return new AgentError(ErrorCodes.DATABASE_ERROR, msg, { cause: err });
  }
  const what = code ? ` (${code})` : '';
  const message = typeof e.message === 'string' && e.message ? `: ${text(e.message)}` : '';
  return new AgentError(ErrorCodes.DATABASE_ERROR, `${label} failed: the connection to the database failed${what}${message}`, { cause: err });
}

/** How a failed connection attempt is handled. */
export interface ConnectFailure {
  /** Retrying can fix it (the server is unreachable, starting up, or full). */
  readonly retry: boolean;
  /** SQLSTATE or errno, for messages and logs (no personal data). */
  readonly code: string;
  /** What the operator should check. */
  readonly advice: string;
  readonly kind: 'network' | 'auth' | 'tls' | 'server';
}

const RETRY_ERRNO = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN',
  'ENETDOWN', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED',
]);
const RETRY_SQLSTATE = new Set(['57P03', '53300', '53000', '08000', '08001', '08004', '08006']);
const TLS_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
]);

/** Classify a failed connection attempt. */
export function classifyConnectError(err: unknown): ConnectFailure {
  const code = errorCodeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === '28P01' || code === '28000') {
    return {
      retry: false,
      code,
      kind: 'auth',
      advice: "the server refused the login: check user and password in the connection's secret, and that the server's pg_hba.conf admits this user, database and client address (with or without TLS)",
    };
  }
  if (
    (code !== undefined && (TLS_ERRORS.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))) ||
    (!isSqlstate(code) && /SSL|TLS|certificate/i.test(message))
  ) {
    return {
      retry: false,
      code: code ?? 'TLS',
      kind: 'tls',
      advice: 'the TLS handshake failed: check "sslmode" (disable, require, verify-full) and "ssl_ca" (the PEM of the CA that signed the server certificate) in the secret, and that the server accepts TLS',
    };
  }
  if (code !== undefined && (RETRY_ERRNO.has(code) || RETRY_SQLSTATE.has(code))) {
    return {
      retry: true,
      code,
      kind: isSqlstate(code) ? 'server' : 'network',
      advice: isSqlstate(code)
        ? code === '53300'
          ? 'the server has no free connection slots: check max_connections and other clients'
          : 'the server is not accepting connections yet: check that it is up and not in recovery'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? "the host name does not resolve: check host in the connection's secret and the agent's DNS"
          : "the server could not be reached: check host and port in the connection's secret, that the database runs, and firewalls/security groups between the agent and it",
    };
  }
  if (/timeout|terminated unexpectedly|Connection terminated/i.test(message)) {
    return {
      retry: true,
      code: code ?? 'ETIMEDOUT',
      kind: 'network',
      advice: "the server did not complete the connection: check host and port in the connection's secret, and firewalls between the agent and the database",
    };
  }
  if (isSqlstate(code)) {
    return {
      retry: false,
      code,
      kind: 'server',
      advice:
        code === '3D000'
          ? "the database does not exist: check the database name in the connection's secret"
          : code === '42501'
            ? 'the user may not connect to this database: grant it CONNECT'
            : 'the server refused the connection',
    };
  }
  return { retry: false, code: code ?? 'UNKNOWN', kind: 'network', advice: "check the connection's secret and the server" };
}

/** The message of CONNECT_FAILED: the connection's name, the code and what to check; the server's text masked. */
export function connectErrorMessage(connName: string, f: ConnectFailure, err: unknown, attempts: number, mask: Mask): string {
  const cond = isSqlstate(f.code) ? `SQLSTATE ${f.code} (${conditionName(f.code)})` : f.code;
  const raw = err instanceof Error ? err.message : '';
  // A server's text (role names, database names) is masked; it never holds the password.
  const server = isSqlstate(f.code) && raw ? `: ${mask(raw).replace(/\s+/g, ' ').trim().slice(0, 500)}` : '';
  const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
  return `connection "${connName}": could not connect (${cond}${server})${tries}; ${f.advice}`;
}

/** Where a cancel request goes: the address the running session is connected to. */
export type CancelTarget = { readonly path: string } | { readonly host: string; readonly port: number };

/**
 * Send the protocol's CancelRequest (a fresh connection carrying the session's process id and secret
 * key, as libpq's PQcancel and psql's Ctrl-C do). It needs no login, so it works for any user and
 * through poolers that map the key (pgbouncer). Resolves once the server closed the connection or
 * after `timeoutMs`; rejects when the address cannot be reached.
 */
export function sendCancelRequest(target: CancelTarget, processId: number, secretKey: number, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? netConnect({ path: target.path }) : netConnect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, timeoutMs);
    timer.unref();
    socket.once('connect', () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(80877102, 4);
      packet.writeInt32BE(processId, 8);
      packet.writeInt32BE(secretKey, 12);
      socket.end(packet);
    });
    socket.on('data', () => undefined);
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
