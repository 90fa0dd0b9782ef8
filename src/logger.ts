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

/** Keys that hold credentials: always redacted, at every level. */
const SECRET_PATHS = [
  'secret', '*.secret', 'secrets', '*.secrets',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'client_secret', '*.client_secret', 'access_token', '*.access_token', 'token', '*.token',
  'password', '*.password',
];
/** Keys that hold personal data: redacted unless the level is DEBUG. */
const PERSONAL_PATHS = ['identifiers', '*.identifiers', 'body', '*.body', 'headers', '*.headers'];

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
  const dest =
    typeof options.destination === 'object'
      ? options.destination
      : pino.destination({ fd: options.destination ?? 2, sync: true });
  const logger = pino(
    {
      level: effective,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: debug ? SECRET_PATHS : [...SECRET_PATHS, ...PERSONAL_PATHS], censor: '[redacted]' },
    },
    dest,
  );
  if (!level) logger.warn({ LOGLEVEL: requested }, 'unknown LOGLEVEL; using INFO (use DEBUG, INFO, WARNING or ERROR)');
  if (debug) {
    logger.warn(
      'LOGLEVEL is DEBUG: logs will contain personal data (identifiers, response bodies) and may contain credentials. Do not use DEBUG in production.',
    );
  }
  return logger;
}
