import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

const LEVELS: Readonly<Record<string, pino.Level>> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
  FATAL: 'fatal',
};

/**
 * Map DataGrail's LOGLEVEL names (DEBUG, INFO, WARNING, ERROR, CRITICAL; any case) to pino levels.
 * Returns undefined for an unknown name so the caller can report it.
 */
export function parseLogLevel(name: string): pino.Level | undefined {
  return LEVELS[name.trim().toUpperCase()];
}

/** Keys that hold credentials: redacted at every level and at every depth (compared lower-cased). */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'secret', 'secrets', 'credentials', 'authorization', 'proxy-authorization', 'cookie', 'set-cookie',
  'x-api-key', 'api_key', 'apikey', 'client_secret', 'access_token', 'refresh_token', 'id_token', 'token',
  'password', 'passphrase', 'private_key', 'personal_access_token',
]);
/** Keys that hold personal data: redacted below DEBUG, at every depth. */
export const PERSONAL_KEYS: ReadonlySet<string> = new Set(['identifiers', 'body', 'headers']);
const CENSOR = '[redacted]';
const MAX_DEPTH = 8;

/**
 * `value` with every member named in `keys` (at any depth, case-insensitive) replaced by
 * "[redacted]". Objects and arrays are copied only where something changed; deeper than 8 levels
 * the rest is replaced (a log line has no business that deep).
 */
export function redactDeep(value: unknown, keys: ReadonlySet<string>, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return CENSOR;
  if (value instanceof Error) return value; // pino's err serializer runs first; a raw Error is left to it
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const r = redactDeep(v, keys, depth + 1);
      if (r !== v) (out ??= [...value])[i] = r;
    });
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const r = keys.has(k.toLowerCase()) ? CENSOR : redactDeep(v, keys, depth + 1);
    if (r !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = r;
  }
  return out ?? value;
}

/** Options for {@link makeLogger}. */
export interface LoggerOptions {
  /** A DataGrail LOGLEVEL name; default INFO. Unknown names fall back to INFO with a warning. */
  level?: string;
  /** Where JSON lines go; default stderr (fd 2), so stdout stays machine-readable for the CLI. */
  destination?: DestinationStream | number;
}

/**
 * Make the agent's pino logger. Below DEBUG, identifiers, bodies and headers are redacted as a
 * safety net (the code never logs them at those levels anyway); secrets are redacted always. At
 * DEBUG a startup warning says that personal data and credentials may appear.
 */
export function makeLogger(options: LoggerOptions = {}): Logger {
  const requested = options.level ?? 'INFO';
  const level = parseLogLevel(requested);
  const effective = level ?? 'info';
  const debug = effective === 'debug' || effective === 'trace';
  const keys = debug ? SECRET_KEYS : new Set([...SECRET_KEYS, ...PERSONAL_KEYS]);
  const dest =
    typeof options.destination === 'object'
      ? options.destination
      : pino.destination({ fd: options.destination ?? 2, sync: true });
  const logger = pino(
    {
      level: effective,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        // pino's own redact reaches fixed paths; this reaches every depth (a header map inside an error inside a job).
        log: (object) => redactDeep(object, keys) as Record<string, unknown>,
      },
    },
    dest,
  );
  // A child's bindings are serialized when it is made, outside formatters.log: redact them there.
  // Children inherit this method from the root through their prototype, so grandchildren are covered.
  const pinoChild = (Object.getPrototypeOf(logger) as { child: Logger['child'] }).child;
  (logger as { child: Logger['child'] }).child = function (this: Logger, bindings, opts) {
    return pinoChild.call(this, redactDeep(bindings, keys) as typeof bindings, opts);
  } as Logger['child'];
  if (!level) logger.warn({ LOGLEVEL: requested }, 'unknown LOGLEVEL; using INFO (use DEBUG, INFO, WARNING or ERROR)');
  if (debug) {
    logger.warn(
      'LOGLEVEL is DEBUG: logs will contain personal data (identifiers, response bodies) and may contain credentials. Do not use DEBUG in production.',
    );
  }
  return logger;
}
