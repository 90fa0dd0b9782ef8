/**
 * Find, read, parse and validate the agent config. The loader never reads `process.env`:
 * the entry point passes the values in (see src/env.ts).
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AgentError, ErrorCodes } from '../errors.js';
import { findJsonError, lineColumn } from './json-position.js';
import type { LoadedConfig } from './types.js';
import { validateConfig } from './validate.js';

/** Where a config may come from, in order of precedence. */
export interface ConfigSources {
  /** An explicit file path (CLI `--config PATH`); relative to `cwd`. Wins over the env. */
  path?: string;
  env: {
    /** A path to the config file; relative to `cwd`. */
    DATAGRAIL_AGENT_CONFIG_FILE?: string;
    /** The config JSON text itself. */
    DATAGRAIL_AGENT_CONFIG?: string;
  };
  /** Folder relative paths resolve against; the baseDir of a config given as JSON text. */
  cwd: string;
}

const HOW_TO_GIVE =
  'give a config with --config PATH, or set DATAGRAIL_AGENT_CONFIG_FILE to the path of a config file, ' +
  'or set DATAGRAIL_AGENT_CONFIG to the config JSON itself';

const nonEmpty = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';

async function readConfigFile(file: string, origin: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist' :
      code === 'EISDIR' ? 'is a folder, not a file' :
      code === 'EACCES' || code === 'EPERM' ? 'cannot be read (permission denied)' :
      `cannot be read (${code ?? 'unknown error'})`;
    throw new AgentError(
      ErrorCodes.CONFIG_NOT_FOUND,
      `config file ${file} (from ${origin}) ${why}; check the path, or ${HOW_TO_GIVE}`,
      { cause: err },
    );
  }
}

/**
 * Parse config JSON text. The error names the line and column but never quotes the text.
 * @throws AgentError CONFIG_PARSE
 */
export function parseConfigText(text: string, source: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') {
    throw new AgentError(ErrorCodes.CONFIG_PARSE, `${source} is empty; it must hold the config as a JSON object`);
  }
  try {
    return JSON.parse(body);
  } catch {
    // The SyntaxError is not kept as cause: its message quotes part of the text.
    const found = findJsonError(body);
    let where = '';
    if (found) {
      const { line, column } = lineColumn(body, found.offset);
      where = ` at line ${line}, column ${column}: ${found.reason}`;
    }
    throw new AgentError(ErrorCodes.CONFIG_PARSE, `${source} is not valid JSON${where}; fix the JSON there`);
  }
}

/**
 * Read, parse, validate, apply defaults and deep-freeze the config from the first source given:
 * `sources.path`, then env DATAGRAIL_AGENT_CONFIG_FILE, then env DATAGRAIL_AGENT_CONFIG.
 * baseDir is the config file's folder, or `cwd` for a config given as JSON text.
 * @throws AgentError CONFIG_NOT_FOUND (no source, or the file cannot be read), CONFIG_PARSE
 * (not JSON; says line and column), CONFIG_INVALID (with `.problems` = every problem).
 */
export async function loadConfig(sources: ConfigSources): Promise<LoadedConfig> {
  const cwd = resolve(sources.cwd);
  const fileOrigin = nonEmpty(sources.path)
    ? { file: sources.path, origin: '--config' }
    : nonEmpty(sources.env.DATAGRAIL_AGENT_CONFIG_FILE)
      ? { file: sources.env.DATAGRAIL_AGENT_CONFIG_FILE, origin: 'DATAGRAIL_AGENT_CONFIG_FILE' }
      : undefined;
  if (fileOrigin) {
    const file = resolve(cwd, fileOrigin.file);
    const text = await readConfigFile(file, fileOrigin.origin);
    const config = validateConfig(parseConfigText(text, `config file ${file}`), `config file ${file}`);
    return Object.freeze({ config, baseDir: dirname(file), source: file });
  }
  const json = sources.env.DATAGRAIL_AGENT_CONFIG;
  if (nonEmpty(json)) {
    const source = 'DATAGRAIL_AGENT_CONFIG';
    const config = validateConfig(parseConfigText(json, source), source);
    return Object.freeze({ config, baseDir: cwd, source });
  }
  throw new AgentError(ErrorCodes.CONFIG_NOT_FOUND, `no config given; ${HOW_TO_GIVE}`);
}
