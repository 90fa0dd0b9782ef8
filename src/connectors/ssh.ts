/**
 * DataGrail's SSH connector: each statement is a command line with `{name}` placeholders, run on
 * the server over SSH (ssh2 `exec`). Identifier values are shell-quoted (see shell-quote.ts), so a
 * value is always one argument. For access and identifiers the command's stdout must be a JSON array
 * of objects, read as a stream (memory bounded by the largest object); for test, delete and optout
 * stdout is drained and ignored. A non-zero exit status fails the statement (COMMAND_FAILED).
 *
 * The secret holds the connection settings: `username`, `password` and/or `private_key` (PEM or
 * OpenSSH text; the key is tried first when both are set), `passphrase`, `server`, `port` (22),
 * `host_key` (the server's public key, a known_hosts line without the host name) and
 * `host_key_check` ("false" skips host key verification, with a WARN on every connect).
 *
 * One SSH connection per run: opened at the start of `run`, closed at its end.
 */
import { createHash } from 'node:crypto';
import pRetry, { AbortError } from 'p-retry';
import type { Client, ClientChannel, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import { AgentError, asAgentError, ErrorCodes, errorCodeOf, isAgentError } from '../errors.js';
import { backoffOptions } from '../engine/send.js';
import { parseTemplate, type Template } from '../templates.js';
import { splitJsonArray } from '../reports/json-array.js';
import { renderCommand } from './shell-quote.js';
import type { Connector, ConnectorRun, PlannedStatement, RunStatement } from './types.js';

type Ssh2 = typeof import('ssh2');

let ssh2Module: Promise<Ssh2> | undefined;

/** ssh2, imported on first use (agents without SSH connections never load it). */
function loadSsh2(): Promise<Ssh2> {
  ssh2Module ??= import('ssh2').then(
    (m) => ((m as unknown as { default?: Ssh2 }).default ?? m) as Ssh2,
    (err: unknown) => {
      ssh2Module = undefined;
      throw new AgentError(ErrorCodes.INTERNAL, 'the ssh2 package cannot be loaded; reinstall dsr-agent', { cause: err });
    },
  );
  return ssh2Module;
}

/** What a dry run shows in place of each identifier value. */
const MASKED = '****';
/** Stderr kept for the error message; the rest is drained. */
const STDERR_KEEP = 4096;
/** Longest stderr line quoted in a COMMAND_FAILED message. */
const STDERR_LINE_MAX = 200;
/** Socket errors that a later attempt can fix. */
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);
/** Host key types ssh2 verifies, and the host key algorithms that present each. */
const HOST_KEY_ALGORITHMS: Readonly<Record<string, readonly ServerHostKeyAlgorithm[]>> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
};
const KEYSCAN_HINT = "ssh-keyscan -t ed25519 <server> | cut -d' ' -f2-";

/** A pinned host key: its type and its public key blob (SSH wire format). */
interface PinnedKey {
  readonly type: string;
  readonly blob: Buffer;
}

/** The connection settings read from the secret. */
interface SshSettings {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly password?: string;
  readonly privateKey?: string;
  readonly passphrase?: string;
  /** The pinned keys; undefined only when host_key_check is "false" and no host_key is given. */
  readonly hostKeys?: readonly PinnedKey[];
}

/** One open SSH connection of a run. */
interface Session {
  readonly client: Client;
  /** The command running now. */
  channel?: ClientChannel;
  /** An exec request is waiting for the server's answer. */
  starting: boolean;
  /** Stop the command as soon as it starts, then end the connection (abort or close() while starting). */
  stopping: boolean;
  /** An error the connection reported after login (reset, keepalive timeout). */
  lost?: Error;
  /** close() ended it (shutdown). */
  cancelled: boolean;
  /** Resolves once the connection is closed. */
  readonly closed: Promise<void>;
}

/** A statement ready to run. */
interface Prepared {
  readonly label: string;
  readonly command: string;
  readonly consume?: RunStatement['consume'];
}

/** `SHA256:…` as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written at the start of a public key blob, or undefined. */
function blobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || blob.length < 4 + n) return undefined;
  return blob.subarray(4, 4 + n).toString('latin1');
}

function secretInvalid(conn: string, message: string): AgentError {
  return new AgentError(ErrorCodes.SECRET_INVALID, `secret of connection "${conn}": ${message}`);
}

/**
 * Parse `host_key`: one or more public keys, one a line, each `type base64 [comment]` (a leading
 * host name or marker, as in a full known_hosts line, is skipped). Throws SECRET_INVALID.
 */
export function parseHostKeys(text: string, conn: string): PinnedKey[] {
  const keys: PinnedKey[] = [];
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  lines.forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const tokens = line.split(/\s+/);
    const at = tokens.findIndex((t) => /^(ssh-|ecdsa-|sk-)/.test(t));
    const where = lines.length > 1 ? ` (line ${i + 1})` : '';
    if (at < 0 || at + 1 >= tokens.length || !/^[A-Za-z0-9+/]+={0,2}$/.test(tokens[at + 1])) {
      throw secretInvalid(conn, `host_key${where} is not a public key like "ssh-ed25519 AAAA…"; get it with \`${KEYSCAN_HINT}\``);
    }
    const type = tokens[at];
    if (!Object.hasOwn(HOST_KEY_ALGORITHMS, type)) {
      throw secretInvalid(conn, `host_key${where} has type ${type.slice(0, 40)}, which is not supported; pin the server's ed25519, ECDSA or RSA key`);
    }
    const blob = Buffer.from(tokens[at + 1], 'base64');
    if (blobType(blob) !== type) {
      throw secretInvalid(conn, `host_key${where} is not a valid ${type} key (its base64 does not hold one); get it with \`${KEYSCAN_HINT}\``);
    }
    keys.push({ type, blob });
  });
  if (keys.length === 0) throw secretInvalid(conn, `host_key is empty; get it with \`${KEYSCAN_HINT}\``);
  return keys;
}

/** Read the connection settings from the secret. Throws SECRET_INVALID or HOST_KEY_REJECTED. */
function readSettings(secret: Readonly<Record<string, string>>, conn: string, ssh2: Ssh2): SshSettings {
  const get = (key: string): string | undefined => {
    const v = Object.hasOwn(secret, key) ? secret[key] : undefined;
    return v === undefined || v === null || String(v) === '' ? undefined : String(v);
  };
  const username = get('username');
  if (username === undefined) throw secretInvalid(conn, 'username is missing: add the SSH login name as "username"');
  const host = get('server')?.trim();
  if (!host) throw secretInvalid(conn, 'server is missing: add the SSH server\'s host name or address as "server"');
  const portText = get('port')?.trim() ?? '22';
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw secretInvalid(conn, 'port must be a number from 1 to 65535');

  let privateKey = get('private_key');
  // Secret stores sometimes hold a key on one line with literal "\n" separators.
  if (privateKey !== undefined && !privateKey.includes('\n') && privateKey.includes('\\n')) privateKey = privateKey.replaceAll('\\n', '\n');
  const passphrase = get('passphrase');
  const password = get('password');
  if (privateKey === undefined && password === undefined) {
    throw secretInvalid(conn, 'neither password nor private_key is set: add one of them');
  }
  if (privateKey !== undefined) {
    const parsed = ssh2.utils.parseKey(privateKey, passphrase);
    if (parsed instanceof Error) {
      const why = /passphrase/i.test(parsed.message)
        ? passphrase === undefined
          ? 'it is encrypted: add its passphrase as "passphrase"'
          : 'the passphrase does not decrypt it'
        : 'it is not a PEM or OpenSSH private key ssh2 can read';
      throw secretInvalid(conn, `private_key cannot be used: ${why}`);
    }
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key.getPrivatePEM() === null) throw secretInvalid(conn, 'private_key holds a public key, not a private one');
  }

  const check = get('host_key_check')?.trim().toLowerCase() !== 'false';
  const hostKeyText = get('host_key');
  let hostKeys: PinnedKey[] | undefined;
  if (hostKeyText !== undefined) hostKeys = parseHostKeys(hostKeyText, conn);
  else if (check) {
    throw new AgentError(
      ErrorCodes.HOST_KEY_REJECTED,
      `connection "${conn}" has no host_key in its secret, so the SSH server cannot be verified: add the server's public key ` +
        `as "host_key" (e.g. the output of \`${KEYSCAN_HINT}\`, checked against the server), or set "host_key_check": "false" to skip the check (not recommended)`,
    );
  }
  return { host, port, username, password, privateKey, passphrase, hostKeys };
}

const templates = new Map<string, Template>();

/** parseTemplate, cached by text; errors name the statement. */
function templateOf(text: string, label: string): Template {
  let t = templates.get(text);
  if (t === undefined) {
    try {
      t = parseTemplate(text);
    } catch (err) {
      if (isAgentError(err)) throw new AgentError(err.code, `${label}: ${err.message}`);
      throw err;
    }
    if (templates.size >= 1000) templates.clear();
    templates.set(text, t);
  }
  return t;
}

/** The statements to run: `true` for a test with none configured. */
function statementsOf(run: Pick<ConnectorRun, 'type' | 'statements'>): readonly RunStatement[] {
  if (run.statements.length === 0 && run.type === 'test') return [{ label: 'test', text: 'true' }];
  return run.statements;
}

function render(run: Pick<ConnectorRun, 'identifiers' | 'secret'>, st: RunStatement, masked?: string): string {
  const template = templateOf(st.text, st.label);
  return renderCommand(template, run.identifiers, { label: st.label, masked, secretKeys: Object.keys(run.secret) });
}


/** A connection failure a later attempt may fix (retried per run.retry). */
class Unreachable extends AgentError {}

/** Open one SSH connection (one attempt). Rejects with Unreachable, or AbortError wrapping an AgentError. */
function connectOnce(ssh2: Ssh2, s: SshSettings, run: ConnectorRun, sessions: Set<Session>): Promise<Session> {
  const conn = run.conn.name;
  return new Promise<Session>((resolve, reject) => {
    const client = new ssh2.Client();
    let presented: Buffer | undefined;
    let ready = false;
    let settled = false;
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    const session: Session = { client, cancelled: false, starting: false, stopping: false, closed };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      run.signal.removeEventListener('abort', onAbort);
      client.destroy();
      reject(err);
    };
    const onAbort = () => fail(run.signal.reason);
    client.on('ready', () => {
      ready = true;
      if (settled) return;
      settled = true;
      run.signal.removeEventListener('abort', onAbort);
      sessions.add(session);
      resolve(session);
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (ready) {
        session.lost ??= err;
        return;
      }
      fail(classify(err, presented, s, conn, run));
    });
    client.on('close', () => {
      sessions.delete(session);
      markClosed();
      fail(new Unreachable(ErrorCodes.CONNECT_FAILED, `the SSH server of connection "${conn}" closed the connection before the login finished`));
    });

    const methods: Array<'publickey' | 'password'> = [];
    if (s.privateKey !== undefined) methods.push('publickey');
    if (s.password !== undefined) methods.push('password');
    const config: ConnectConfig = {
      host: s.host,
      port: s.port,
      username: s.username,
      password: s.password,
      privateKey: s.privateKey,
      passphrase: s.passphrase,
      authHandler: methods,
      readyTimeout: 20_000,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
    };
    const pinned = s.hostKeys;
    if (pinned) {
      config.algorithms = { serverHostKey: [...new Set(pinned.flatMap((k) => HOST_KEY_ALGORITHMS[k.type]))] };
      config.hostVerifier = (key: Buffer): boolean => {
        const ok = pinned.some((k) => k.blob.equals(key));
        if (!ok) presented = Buffer.from(key);
        return ok;
      };
    } else {
      run.log.warn(
        { connection: conn },
        `the SSH server's host key is not verified (host_key_check is "false"): add host_key to the secret of connection "${conn}"`,
      );
    }
    if (run.signal.aborted) return fail(run.signal.reason);
    run.signal.addEventListener('abort', onAbort, { once: true });
    try {
      client.connect(config);
      client.setNoDelay(true); // small request/response packets: no Nagle delay per round trip
    } catch (err) {
      fail(new AbortError(secretInvalid(conn, `the SSH settings cannot be used (${(err as Error).message.slice(0, 120)})`)));
    }
  });
}

/** Map an ssh2 error before login to what the agent reports. Never quotes a password or key. */
function classify(err: Error & { level?: string }, presented: Buffer | undefined, s: SshSettings, conn: string, run: ConnectorRun): Error {
  if (presented !== undefined) {
    const pinned = (s.hostKeys ?? []).map((k) => `${k.type} ${fingerprint(k.blob)}`).join(', ');
    return new AbortError(
      new AgentError(
        ErrorCodes.HOST_KEY_REJECTED,
        `the SSH server of connection "${conn}" presented host key ${blobType(presented) ?? 'of unknown type'} ${fingerprint(presented)}, ` +
          `which is not the pinned host_key (${pinned}); nothing was run. If the server's key was changed on purpose, put the new key in host_key; ` +
          'otherwise the connection may be intercepted',
      ),
    );
  }
  if (s.hostKeys && /no matching host key/i.test(err.message)) {
    const types = [...new Set(s.hostKeys.map((k) => k.type))].join(', ');
    return new AbortError(
      new AgentError(
        ErrorCodes.HOST_KEY_REJECTED,
        `the SSH server of connection "${conn}" has no host key of the pinned type (${types}); nothing was run. ` +
          `Pin the key the server has, e.g. from \`${KEYSCAN_HINT}\``,
      ),
    );
  }
  if (err.level === 'client-authentication') {
    const tried = [s.privateKey !== undefined ? 'private_key' : '', s.password !== undefined ? 'password' : ''].filter(Boolean).join(' and ');
    return new AbortError(
      new AgentError(
        ErrorCodes.CONNECT_FAILED,
        `the SSH server of connection "${conn}" refused the login (tried ${tried}): check username and ${tried} in the connection's secret`,
      ),
    );
  }
  const code = errorCodeOf(err);
  if ((code !== undefined && RETRYABLE_CODES.has(code)) || err.level === 'client-timeout') {
    return new Unreachable(
      ErrorCodes.CONNECT_FAILED,
      `cannot reach the SSH server of connection "${conn}" (${code ?? 'timed out before the login finished'})`,
      { cause: err },
    );
  }
  return new AbortError(
    new AgentError(
      ErrorCodes.CONNECT_FAILED,
      `SSH connection of connection "${conn}" failed${code ? ` (${code})` : ''}: ${run.mask(err.message).slice(0, STDERR_LINE_MAX)}`,
      { cause: err },
    ),
  );
}

/** Connect, retrying unreachable servers with backoff per run.retry. */
async function connect(ssh2: Ssh2, s: SshSettings, run: ConnectorRun, sessions: Set<Session>): Promise<Session> {
  const { retry, signal } = run;
  try {
    return await pRetry(() => connectOnce(ssh2, s, run, sessions), {
      ...backoffOptions(retry, signal),
      shouldRetry: ({ error }) => error instanceof Unreachable,
      onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
        if (retriesLeft > 0 && error instanceof Unreachable) {
          run.log.warn({ attempt: attemptNumber, reason: error.message, delayMs: Math.round(retryDelay) }, 'retrying SSH connection');
        }
      },
    });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    if (err instanceof Unreachable) {
      const attempts = retry.retries + 1;
      throw new AgentError(ErrorCodes.CONNECT_FAILED, `${err.message} after ${attempts} attempt${attempts === 1 ? '' : 's'}`, { cause: err.cause });
    }
    throw err;
  }
}

/** Ask the server to kill the running command, and close its channel. */
function stop(channel: ClientChannel | undefined): void {
  if (!channel) return;
  try {
    channel.signal('KILL');
  } catch {
    // not open any more, or the server does not take signals
  }
  try {
    channel.close();
  } catch {
    // already closed
  }
}

function end(client: Client): void {
  try {
    client.end();
  } catch {
    // already ended
  }
}

/** How long an abort waits for a starting command's channel, to signal it before disconnecting. */
const START_GRACE_MS = 1000;

/**
 * Stop what the session is running and end it: the command is signalled (KILL) and its channel
 * closed before the connection ends, so a server that does not kill commands on disconnect still
 * stops it. A command still starting is stopped as soon as its channel opens.
 */
function shutdown(session: Session): void {
  if (session.channel) {
    stop(session.channel);
    end(session.client);
  } else if (session.starting) {
    session.stopping = true;
    setTimeout(() => end(session.client), START_GRACE_MS).unref();
  } else end(session.client);
}

/** Resolves once the connection is closed; destroys it after `graceMs`. */
async function closedOrDestroyed(session: Session, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    session.closed,
    new Promise<void>((r) => {
      timer = setTimeout(() => {
        session.client.destroy();
        r();
      }, graceMs);
    }),
  ]);
  clearTimeout(timer);
}

/** The first non-blank line of `text`, masked, at most STDERR_LINE_MAX characters. */
function firstLine(text: string, run: ConnectorRun): string {
  // Masked before it is split or trimmed, so no reshaping can leave a piece of a value unmatched.
  const masked = run.mask(text).split(/\r?\n/).find((l) => l.trim() !== '')?.trim() ?? '';
  const chars = [...masked];
  return chars.length > STDERR_LINE_MAX ? `${chars.slice(0, STDERR_LINE_MAX - 1).join('')}…` : masked;
}

/** A started command: how it ended, and the start of its stderr. */
interface Watched {
  readonly channel: ClientChannel;
  exit?: { code: number | null; signal?: string };
  ended: boolean;
  readonly closed: Promise<void>;
  readonly stderr: Buffer[];
}

/** Attach the listeners a command needs (synchronously, as soon as its channel exists). */
function watch(channel: ClientChannel): Watched {
  let onClose!: () => void;
  const w: Watched = { channel, ended: false, closed: new Promise<void>((r) => (onClose = r)), stderr: [] };
  const record = (code: unknown, signal: unknown) => {
    if (w.exit === undefined && (typeof code === 'number' || typeof signal === 'string')) {
      w.exit = { code: typeof code === 'number' ? code : null, signal: typeof signal === 'string' ? signal : undefined };
    }
  };
  channel.on('exit', record);
  channel.once('close', (code: unknown, signal: unknown) => {
    record(code, signal);
    onClose();
  });
  channel.once('end', () => (w.ended = true));
  let stderrBytes = 0;
  channel.stderr.on('data', (chunk: Buffer) => {
    if (stderrBytes < STDERR_KEEP) w.stderr.push(chunk.subarray(0, STDERR_KEEP - stderrBytes));
    stderrBytes += chunk.length;
  });
  return w;
}

/** Run one command on the session; its records go to `p.consume`. */
async function execute(session: Session, p: Prepared, run: ConnectorRun): Promise<void> {
  const conn = run.conn.name;
  // Listeners go on in the exec callback itself: the exit status and close can arrive in the same
  // read as the channel confirmation, before any continuation of an await would run.
  session.starting = true;
  const w = await new Promise<Watched>((resolve, reject) => {
    try {
      session.client.exec(p.command, (err, ch) => {
        session.starting = false;
        if (err) return reject(err);
        session.channel = ch;
        resolve(watch(ch));
        if (session.stopping) shutdown(session);
      });
    } catch (err) {
      session.starting = false;
      reject(err);
    }
  }).catch((err: unknown) => {
    if (run.signal.aborted) throw run.signal.reason;
    if (session.cancelled) throw cancelled(conn);
    throw new AgentError(
      ErrorCodes.CONNECT_FAILED,
      `the SSH server of connection "${conn}" did not start ${p.label}: ${run.mask((err as Error).message ?? String(err)).slice(0, STDERR_LINE_MAX)}`,
      { cause: err },
    );
  });
  const { channel } = w;

  let failure: unknown;
  try {
    if (p.consume) {
      const label = `output of ${p.label}`;
      for await (const record of splitJsonArray(channel, { maxObjectBytes: run.maxObjectBytes, label })) {
        if (run.signal.aborted) throw run.signal.reason;
        if (session.cancelled) throw cancelled(conn);
        await p.consume(record);
      }
    } else {
      for await (const chunk of channel) void chunk; // drained: test, delete and optout output is ignored
    }
  } catch (err) {
    failure = err;
    const preview = (err as { bodyPreview?: string }).bodyPreview;
    if (preview !== undefined && run.log.isLevelEnabled('debug')) {
      run.log.debug({ query: p.label, body: run.mask(preview) }, 'malformed command output (first 2 KiB)');
    }
  }
  const killed = !w.ended;
  if (killed) {
    // Stopped reading early: the command must not keep running, and what is buffered is dropped
    // (the channel closes only once its output has been read to the end). read() in a 'readable'
    // handler, since the abandoned async iterator's 'readable' listener keeps resume() from working.
    stop(channel);
    const drain = () => {
      while (channel.read() !== null);
    };
    channel.on('readable', drain);
    drain();
  }
  await Promise.race([w.closed, session.closed]);
  session.channel = undefined;
  if (run.signal.aborted) throw run.signal.reason;
  if (session.cancelled) throw cancelled(conn);

  const detail = (): string => {
    const text = Buffer.concat(w.stderr).toString('utf8');
    if (text && run.log.isLevelEnabled('debug')) run.log.debug({ query: p.label, stderr: run.mask(text) }, 'command stderr (first 4 KiB)');
    const line = firstLine(text, run);
    return line ? `: ${line}` : '';
  };
  const { exit } = w;
  if (typeof exit?.code === 'number' && exit.code !== 0) {
    throw new AgentError(ErrorCodes.COMMAND_FAILED, `${p.label} exited with status ${exit.code}${detail()}`);
  }
  if (failure !== undefined) throw failure;
  if (exit?.signal && !killed) {
    throw new AgentError(ErrorCodes.COMMAND_FAILED, `${p.label} was killed by signal ${exit.signal}${detail()}`);
  }
  if (exit === undefined) {
    if (session.lost) {
      throw new AgentError(
        ErrorCodes.CONNECT_FAILED,
        `the SSH connection of connection "${conn}" was lost during ${p.label} (${errorCodeOf(session.lost) ?? run.mask(session.lost.message).slice(0, 80)})`,
      );
    }
    throw new AgentError(ErrorCodes.COMMAND_FAILED, `${p.label} ended without an exit status (the SSH connection was closed?)${detail()}`);
  }
}

function cancelled(conn: string): AgentError {
  return new AgentError(ErrorCodes.CANCELLED, `the SSH connection of connection "${conn}" was closed because the agent is shutting down`);
}

/** The SSH connector. One connection per run; close() ends any still open. */
export function makeSshConnector(): Connector {
  const sessions = new Set<Session>();

  return {
    async run(run: ConnectorRun): Promise<void> {
      const { signal, log } = run;
      if (signal.aborted) throw signal.reason;
      // Render everything first: a bad identifier or template fails before anything is sent.
      const prepared: Prepared[] = statementsOf(run).map((st) => ({ label: st.label, command: render(run, st), consume: st.consume }));
      if (prepared.length === 0) return;
      const ssh2 = await loadSsh2();
      const settings = readSettings(run.secret, run.conn.name, ssh2);

      const session = await connect(ssh2, settings, run, sessions);
      const onAbort = () => shutdown(session);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for (const p of prepared) {
          if (signal.aborted) throw signal.reason;
          if (session.cancelled) throw cancelled(run.conn.name);
          if (log.isLevelEnabled('debug')) log.debug({ query: p.label, command: p.command }, 'running SSH command');
          const started = performance.now();
          await execute(session, p, run);
          run.settled?.({ label: p.label, durationMs: performance.now() - started });
          if (log.isLevelEnabled('info')) log.info({ query: p.label, ms: Math.round(performance.now() - started) }, 'command succeeded');
        }
      } catch (err) {
        throw signal.aborted ? signal.reason : err;
      } finally {
        signal.removeEventListener('abort', onAbort);
        if (!session.stopping) end(session.client);
        await closedOrDestroyed(session, START_GRACE_MS + 1000);
      }
    },

    /** Each command line with its identifiers as ****; a statement that cannot run carries its error. Sends nothing. */
    plan(run): PlannedStatement[] {
      return statementsOf(run).map((st): PlannedStatement => {
        try {
          return { query: st.label, statement: render(run, st, MASKED) };
        } catch (err) {
          return { query: st.label, error: asAgentError(err).toJSON() };
        }
      });
    },

    async close(): Promise<void> {
      await Promise.all(
        [...sessions].map((session) => {
          session.cancelled = true;
          shutdown(session);
          return closedOrDestroyed(session, START_GRACE_MS + 1000);
        }),
      );
    },
  };
}
