#!/usr/bin/env node
/**
 * `dsr-agent`: validate a config, run its test queries, run a request locally, or serve the job API.
 * Exit codes: 0 success, 1 a connection failed or is unhealthy, 2 bad usage or config.
 */
// First: restarts node with the agent's heap flags when they are missing (src/heap-flags.ts).
import './cli-heap.js';
import { Command, CommanderError } from 'commander';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { inspect } from 'node:util';
import { readEnv } from './env.js';
import { makeLogger, parseLogLevel } from './logger.js';
import { makeAgent } from './bootstrap.js';
import { AgentError, ErrorCodes, isAgentError } from './errors.js';
import { REQUEST_TYPES, type RequestType } from './config/types.js';
import { makeLocalSink } from './storage/local.js';
import { formatTable, makeProgress, resultCell } from './cli-output.js';
import { VERSION } from './version.js';

const env = readEnv();
const out = process.stdout;
const err = process.stderr;

function sources(opts: { config?: string }) {
  return { path: opts.config, env: { DATAGRAIL_AGENT_CONFIG_FILE: env.configFile, DATAGRAIL_AGENT_CONFIG: env.configJson }, cwd: process.cwd() };
}

function parseIdentifier(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new AgentError(ErrorCodes.BAD_REQUEST, `--identifier takes KEY=VALUE, e.g. --identifier email=peter@initech.com`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

const program = new Command('dsr-agent')
  .description('Self-hosted data subject request agent (DataGrail API Proxy compatible)')
  .version(VERSION)
  .option('-c, --config <path>', 'config file (else $DATAGRAIL_AGENT_CONFIG_FILE, else $DATAGRAIL_AGENT_CONFIG)')
  .showHelpAfterError()
  .exitOverride();

program
  .command('validate')
  .description('check the config; print one line per connection (exit 2 listing every problem)')
  .action(async (_o, cmd: Command) => {
    const logger = makeLogger({ level: env.logLevel });
    const { loaded } = await makeAgent(sources(cmd.optsWithGlobals()), logger, undefined, env);
    out.write(`config OK: ${loaded.source}\n`);
    for (const c of loaded.config.connections) {
      out.write(`  ${c.name} (${c.uuid}) ${c.connector_type} mode=${c.mode} capabilities=${c.capabilities.join(',')}\n`);
    }
  });

program
  .command('test')
  .description('run the test queries of every connection (whatever its mode); exit 1 if any is unhealthy')
  .option('--connection <name-or-uuid>', 'only this connection (repeatable)', collect)
  .option('--json', 'print JSON on stdout')
  .action(async (o: { connection?: string[]; json?: boolean }, cmd: Command) => {
    const logger = makeLogger({ level: env.logLevel });
    const agent = await makeAgent(sources(cmd.optsWithGlobals()), logger, undefined, env);
    const results = await agent.engine.test(o.connection);
    await agent.engine.close();
    if (o.json) out.write(JSON.stringify({ connections: results }, null, 2) + '\n');
    else {
      out.write(
        formatTable(
          ['connection', 'uuid', 'mode', 'health', 'time', 'error'],
          results.map((r) => [r.name, r.uuid, r.mode, r.healthy ? 'healthy' : 'UNHEALTHY', `${r.duration_ms} ms`, r.error ? `${r.error.code}: ${r.error.message}` : '']),
        ),
      );
    }
    process.exitCode = results.every((r) => r.healthy) ? 0 : 1;
  });

program
  .command('run')
  .description('run a request for one data subject against the configured connections')
  .argument('<type>', `request type: ${REQUEST_TYPES.join(', ')}`)
  .requiredOption('-i, --identifier <key=value>', 'an identifier of the data subject (repeatable), e.g. email=peter@initech.com', parseIdentifier)
  .option('--connection <name-or-uuid>', 'only this connection, whatever its mode (repeatable)', collect)
  .option('-o, --out <dir>', 'where access reports go: DIR/<connection uuid>/report_<n>.csv (default ./results/<timestamp>)')
  .option('--json', 'print one JSON result object on stdout')
  .option('--dry-run', 'print the requests that would be sent (secrets masked) and send nothing')
  .action(async (type: string, o: { identifier: Record<string, string>; connection?: string[]; out?: string; json?: boolean; dryRun?: boolean }, cmd: Command) => {
    if (!REQUEST_TYPES.includes(type as RequestType)) {
      throw new AgentError(ErrorCodes.BAD_REQUEST, `unknown request type '${type}'; use one of ${REQUEST_TYPES.join(', ')}`);
    }
    const logger = makeLogger({ level: env.logLevel });
    const agent = await makeAgent(sources(cmd.optsWithGlobals()), logger, undefined, env);
    const req = { type: type as RequestType, identifiers: o.identifier, connections: o.connection };
    if (o.dryRun) {
      const plan = await agent.engine.plan(req);
      out.write(JSON.stringify({ type, dry_run: true, requests: plan }, null, 2) + '\n');
      return;
    }
    const dir = resolve(o.out ?? `results/${new Date().toISOString().replace(/[:.]/g, '-')}`);
    if (type === 'access') mkdirSync(dir, { recursive: true, mode: 0o700 });
    const interactive = Boolean(err.isTTY) && !o.json;
    const result = await agent.engine.run(req, {
      sink: type === 'access' ? makeLocalSink(dir) : undefined,
      progress: interactive ? makeProgress(err) : undefined,
    });
    await agent.engine.close();
    if (o.json || !out.isTTY) out.write(JSON.stringify(result, null, 2) + '\n');
    else {
      out.write(
        formatTable(
          ['connection', 'status', 'time', 'result'],
          result.connections.map((c) => [
            c.name,
            c.status,
            c.duration_ms === undefined ? '' : `${c.duration_ms} ms`,
            resultCell(c),
          ]),
        ),
      );
      if (type === 'access') out.write(`reports: ${dir}\n`);
      out.write(`${type}: ${result.status}\n`);
    }
    process.exitCode = result.connections.some((c) => c.status === 'failed') ? 1 : 0;
  });

const sourcesCommand = program.command('sources').description('request sources (privacy platforms polled for requests): check them or run one round');
sourcesCommand
  .command('check')
  .description('reach every request source and count its eligible requests per job type (no personal data); exit 1 if one fails')
  .option('--source <name>', 'only this source')
  .action(async (o: { source?: string }, cmd: Command) => {
    const logger = makeLogger({ level: env.logLevel });
    const agent = await makeAgent(sources(cmd.optsWithGlobals()), logger, undefined, env);
    const { checkSources } = await import('./sources/cli.js');
    const result = await checkSources(agent, logger, o.source);
    await agent.engine.close();
    out.write(JSON.stringify(result, null, 2) + '\n');
    process.exitCode = result.ok ? 0 : 1;
  });
sourcesCommand
  .command('poll')
  .description('one polling round in the foreground: start the jobs of eligible requests, run them, write the outcomes back')
  .option('--once', 'one round (the only mode; the service polls continuously)')
  .option('--source <name>', 'only this source')
  .option('--dry-run', 'list what would be started and written back, identifiers by name only; send nothing')
  .action(async (o: { source?: string; dryRun?: boolean; once?: boolean }, cmd: Command) => {
    if (!o.once) throw new AgentError(ErrorCodes.BAD_REQUEST, 'sources poll runs one round: pass --once (dsr-agent serve polls continuously)');
    const logger = makeLogger({ level: env.logLevel });
    const agent = await makeAgent(sources(cmd.optsWithGlobals()), logger, undefined, env);
    const { pollSources } = await import('./sources/cli.js');
    const result = await pollSources(agent, logger, { env, name: o.source, dryRun: o.dryRun });
    await agent.engine.close();
    out.write(JSON.stringify(result, null, 2) + '\n');
    process.exitCode = result.ok ? 0 : 1;
  });

program
  .command('serve')
  .description('run the job API service (see README: Service)')
  .option('-p, --port <port>', 'port to listen on (default $PORT or 8080)')
  .action(async (o: { port?: string }, cmd: Command) => {
    const { serve } = await import('./server/main.js');
    await serve({ ...sources(cmd.optsWithGlobals()), port: o.port ? Number(o.port) : env.port ?? 8080, agentEnv: env });
  });

/** "TypeError: message" or "Error: ENOTDIR: message" (the code added when the message lacks it), one line of at most 300 characters. */
function describeUnexpected(e: unknown): string {
  if (!(e instanceof Error)) return `a thrown ${typeof e}`;
  const message = (e.message.split('\n')[0] ?? '').slice(0, 300);
  const code = (e as NodeJS.ErrnoException).code;
  return `${e.name}${typeof code === 'string' && !message.startsWith(code) ? ` ${code}` : ''}: ${message}`;
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
  } else if (isAgentError(e)) {
    err.write(`error [${e.code}]: ${e.message}\n`);
    // What an INTERNAL error wraps (its message says to run at DEBUG): the stack and causes, at DEBUG only.
    if (e.cause !== undefined && parseLogLevel(env.logLevel) === 'debug') err.write(`${inspect(e, { depth: 4 })}\n`);
    process.exitCode = e.code === ErrorCodes.CONFIG_INVALID || e.code === ErrorCodes.CONFIG_NOT_FOUND || e.code === ErrorCodes.CONFIG_PARSE || e.code === ErrorCodes.BAD_REQUEST || e.code === ErrorCodes.CONNECTION_NOT_FOUND || e.code === ErrorCodes.DATA_DIR_LOCKED ? 2 : 1;
  } else {
    // Not one of ours (a bug, or a system error the code does not wrap): the code and a one-line summary
    // at every level; the stack trace, with its causes, only at LOGLEVEL=DEBUG.
    const debug = parseLogLevel(env.logLevel) === 'debug';
    err.write(`error [${ErrorCodes.INTERNAL}]: dsr-agent stopped on an unexpected error: ${describeUnexpected(e)}${debug ? '' : '; run again with LOGLEVEL=DEBUG for the stack trace'}\n`);
    if (debug) err.write(`${inspect(e, { depth: 4 })}\n`);
    process.exitCode = 1;
  }
}
