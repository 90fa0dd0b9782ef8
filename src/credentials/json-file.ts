/** JSONFile: secrets from a local JSON file (development, tests, simple deployments). */
import { readFile as fsReadFile } from 'node:fs/promises';
import { AgentError, ErrorCodes } from '../errors.js';
import { assertSecret, describeJsonKind, jsonErrorPosition } from './secret.js';
import type { SecretsSource } from './source.js';
import { resolve } from 'node:path';
import { makeOptionChecker, type CredentialsProvider } from './provider.js';

/** Options of {@link makeJsonFileSource}. */
export interface JsonFileOptions {
  /** Absolute path of the file (resolve a config's relative filename before). */
  path: string;
  /** Reads the file as UTF-8. Default: node:fs/promises readFile. */
  readFile?: (path: string) => Promise<string>;
}

const PROVIDER = 'JSONFile';
const SHAPE = 'a JSON object mapping each credentials_location to its secret, e.g. {"my-api": {"credentials": "..."}}';

function readError(err: unknown, path: string): AgentError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${PROVIDER}: the agent may not read ${path} (${code}): make the file readable by the user the agent runs as.`,
    );
  }
  if (code === 'ENOENT') {
    return new AgentError(
      ErrorCodes.SECRET_PROVIDER_ERROR,
      `${PROVIDER}: the credentials file ${path} does not exist: create it, or fix ` +
        `platform.credentials_manager.options.filename (a relative path resolves against the config file's folder).`,
      { cause: err },
    );
  }
  return new AgentError(
    ErrorCodes.SECRET_PROVIDER_ERROR,
    `${PROVIDER}: reading ${path} failed (${code ?? 'unknown error'}): check that it is a readable file.`,
    { cause: err },
  );
}

/**
 * JSONFile: the file at `path` is {@link SHAPE}. The file is read again on every get (put a
 * SecretsCache in front), so edits are picked up. A location absent from the file is SECRET_NOT_FOUND;
 * an unreadable file SECRET_ACCESS_DENIED (permissions) or SECRET_PROVIDER_ERROR, as is a file that is
 * not such an object; an entry that is not an object of strings SECRET_INVALID.
 */
export function makeJsonFileSource(options: JsonFileOptions): SecretsSource {
  const { path } = options;
  const readFile = options.readFile ?? ((file: string) => fsReadFile(file, 'utf8'));
  return {
    async get(location) {
      let text: string;
      try {
        text = await readFile(path);
      } catch (err) {
        throw readError(err, path);
      }
      let file: unknown;
      try {
        file = JSON.parse(text);
      } catch (err) {
        // No cause: the SyntaxError's message quotes the file, secrets included.
        throw new AgentError(
          ErrorCodes.SECRET_PROVIDER_ERROR,
          `${PROVIDER}: ${path} is not valid JSON${jsonErrorPosition(err)}; it must be ${SHAPE}.`,
        );
      }
      if (typeof file !== 'object' || file === null || Array.isArray(file)) {
        throw new AgentError(
          ErrorCodes.SECRET_PROVIDER_ERROR,
          `${PROVIDER}: ${path} holds ${describeJsonKind(file)}; it must be ${SHAPE}.`,
        );
      }
      if (!Object.hasOwn(file, location)) {
        throw new AgentError(
          ErrorCodes.SECRET_NOT_FOUND,
          `${PROVIDER}: ${path} has no entry ${JSON.stringify(location)}: add one ({"${location}": {"credentials": "..."}}), ` +
            `or fix the connection's credentials_location.`,
        );
      }
      return assertSecret((file as Record<string, unknown>)[location], PROVIDER, location);
    },
  };
}

/** JSONFile as a provider: option `filename` (required; relative to the config file's folder). */
export const jsonFileProvider: CredentialsProvider = {
  name: PROVIDER,
  check(options) {
    const c = makeOptionChecker(options, ['filename'], PROVIDER);
    c.string('filename', true, 'secrets.json');
    return c.problems;
  },
  make(options, ctx) {
    return makeJsonFileSource({ path: resolve(ctx.baseDir, options.filename as string) });
  },
};
