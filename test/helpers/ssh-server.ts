/**
 * A real SSH server for tests (ssh2's Server) on 127.0.0.1: a generated ed25519 host key (ssh2's
 * utils.generateKeyPairSync), one user accepted by password and by public key, exec requests run
 * with `/bin/sh -c` in a child process (a real shell, so quoting is really tested), stdout/stderr
 * piped back with backpressure,
 * the exit code or signal sent back. It records connections, logins and every command it ran,
 * with its pid, the signals the client sent and how the child ended. Each command runs in its own
 * process group, and signals and hang-ups go to the whole group (as a login session's would).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection as ServerConnection, ParsedKey } from 'ssh2';

const { Server, utils } = ssh2;

/** One exec request the server received. */
export interface ExecRecord {
  readonly command: string;
  pid?: number;
  /** Signals the client sent (`KILL`, …). */
  readonly signals: string[];
  /** How the child process ended (set once it is gone). */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** The client's channel closed. */
  channelClosed: boolean;
}

/** One login attempt. */
export interface AuthRecord {
  readonly method: string;
  readonly accepted: boolean;
}

export interface SshServerOptions {
  /** Listen on this port (default: any free port). */
  port?: number;
  username?: string;
  password?: string;
  /** Also accept an encrypted client key (its bcrypt KDF takes a few hundred ms to generate). */
  encryptedKey?: boolean;
}

export interface TestSshServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly username: string;
  readonly password: string;
  /** The host key as a known_hosts line without the host name: `ssh-ed25519 AAAA…`. */
  readonly hostKey: string;
  /** `SHA256:…` of the host key, as ssh-keygen -l prints it. */
  readonly hostKeyFingerprint: string;
  /** The user's key pair (OpenSSH private key text; public key line), accepted for public-key login. */
  readonly clientKey: { readonly private: string; readonly public: string };
  /** A second user key, encrypted with passphrase "correct horse", also accepted (with `encryptedKey`). */
  readonly encryptedClientKey?: { readonly private: string; readonly passphrase: string };
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Connections open now. */
  readonly openConnections: number;
  readonly auths: readonly AuthRecord[];
  readonly execs: readonly ExecRecord[];
  /** The base secret for this server: username, password, server, port, host_key. */
  secret(extra?: Record<string, string | undefined>): Record<string, string>;
  close(): Promise<void>;
}

/** Signal the child's whole process group (the shell and whatever it started), as a session ends. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function parsed(key: string, passphrase?: string): ParsedKey {
  const k = utils.parseKey(key, passphrase);
  if (k instanceof Error) throw k;
  return Array.isArray(k) ? k[0] : k;
}

type KeyPairOptions = Parameters<typeof utils.generateKeyPairSync>[1];

/**
 * utils.generateKeyPairSync, retried until its public key parses: ssh2 1.17 drops a leading zero
 * byte of an ed25519 public key (about 1 key in 250), which makes a malformed key.
 */
function keyPair(type: 'ed25519' | 'ecdsa', opts?: KeyPairOptions): { private: string; public: string } {
  for (;;) {
    const pair = type === 'ecdsa' ? utils.generateKeyPairSync('ecdsa', { bits: 256, ...opts }) : utils.generateKeyPairSync('ed25519', opts);
    if (!(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}

/** `SHA256:…` of a public key line's blob. */
export function fingerprintOf(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1], 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** A fresh public key line (ed25519, or ECDSA P-256), e.g. to pin a key the server does not have. */
export function otherHostKey(type: 'ed25519' | 'ecdsa' = 'ed25519'): string {
  return keyPair(type).public.trim();
}

/** Start a server; close it in afterEach/afterAll. */
export async function startSshServer(opts: SshServerOptions = {}): Promise<TestSshServer> {
  const username = opts.username ?? 'dsr';
  const password = opts.password ?? 'open sesame';
  const host = keyPair('ed25519');
  const client = keyPair('ed25519');
  const passphrase = 'correct horse';
  const encrypted = opts.encryptedKey ? keyPair('ed25519', { passphrase, cipher: 'aes256-ctr', rounds: 16 }) : undefined;
  const allowedKeys = [parsed(client.public), ...(encrypted ? [parsed(encrypted.public)] : [])];

  const execs: ExecRecord[] = [];
  const auths: AuthRecord[] = [];
  const children = new Set<ChildProcess>();
  const clients = new Set<ServerConnection>();
  let connections = 0;

  const server = new Server({ hostKeys: [host.private] }, (conn) => {
    connections++;
    clients.add(conn);
    const mine = new Set<ChildProcess>();
    (conn as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    conn.on('error', () => undefined);
    conn.on('close', () => {
      clients.delete(conn);
      for (const child of mine) killGroup(child, 'SIGKILL');
    });
    conn.on('authentication', (ctx) => {
      const userOk = sameBytes(Buffer.from(ctx.username), Buffer.from(username));
      let ok = false;
      if (ctx.method === 'password') ok = userOk && sameBytes(Buffer.from(ctx.password), Buffer.from(password));
      else if (ctx.method === 'publickey') {
        const key = allowedKeys.find((k) => k.type === ctx.key.algo && sameBytes(ctx.key.data, k.getPublicSSH()));
        ok = userOk && key !== undefined && (!ctx.signature || key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true);
      }
      auths.push({ method: ctx.method, accepted: ok });
      if (ok) ctx.accept();
      else ctx.reject(['password', 'publickey']);
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        let child: ChildProcess | undefined;
        let record: ExecRecord | undefined;
        session.on('signal', (accept, _reject, info) => {
          record?.signals.push(info.name);
          if (child) killGroup(child, `SIG${info.name}` as NodeJS.Signals);
          accept?.();
        });
        session.on('exec', (accept, _reject, info) => {
          const stream = accept();
          const rec: ExecRecord = { command: info.command, signals: [], channelClosed: false };
          record = rec;
          execs.push(rec);
          const proc = spawn('/bin/sh', ['-c', info.command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
          child = proc;
          rec.pid = proc.pid;
          children.add(proc);
          mine.add(proc);
          proc.stdout!.pipe(stream, { end: false });
          proc.stderr!.pipe(stream.stderr, { end: false });
          proc.on('error', () => undefined);
          proc.on('close', (code, signal) => {
            rec.exit = { code, signal };
            children.delete(proc);
            mine.delete(proc);
            try {
              if (code !== null) stream.exit(code);
              else if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
            } catch {
              // channel already closed, or a signal ssh2 does not know
            }
            stream.end();
          });
          stream.on('close', () => {
            rec.channelClosed = true;
            killGroup(proc, 'SIGKILL');
          });
        });
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostKey = host.public.trim().split(/\s+/).slice(0, 2).join(' ');

  return {
    host: '127.0.0.1',
    port,
    username,
    password,
    hostKey,
    hostKeyFingerprint: fingerprintOf(hostKey),
    clientKey: { private: client.private, public: client.public },
    encryptedClientKey: encrypted && { private: encrypted.private, passphrase },
    get connections() {
      return connections;
    },
    get openConnections() {
      return clients.size;
    },
    auths,
    execs,
    secret(extra = {}) {
      const base: Record<string, string | undefined> = { username, password, server: '127.0.0.1', port: String(port), host_key: hostKey, ...extra };
      return Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined));
    },
    async close() {
      for (const child of children) killGroup(child, 'SIGKILL');
      for (const c of clients) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
