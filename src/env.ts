/**
 * The only module that reads `process.env`. Entry points (cli.ts, the service main) call
 * `readEnv()` once and pass typed values down.
 */

/** Environment settings the agent understands. */
export interface AgentEnv {
  /** LOGLEVEL: DEBUG, INFO, WARNING, ERROR (any case). Default INFO. */
  readonly logLevel: string;
  /** DATAGRAIL_AGENT_CONFIG_FILE: path to the config file. */
  readonly configFile?: string;
  /** DATAGRAIL_AGENT_CONFIG: the config JSON itself. */
  readonly configJson?: string;
  /** PORT for `serve`. Default 8080. */
  readonly port?: number;
  /** DSR_AGENT_DATA_DIR: journal and local reports. Default ./data. */
  readonly dataDir?: string;
  /** True when an AWS endpoint override is set (local S3 emulators need path-style addressing). */
  readonly awsEndpointOverride: boolean;
}

/** Read the agent's settings from an environment (default: `process.env`). */
export function readEnv(env: NodeJS.ProcessEnv = process.env): AgentEnv {
  const port = env.PORT ? Number(env.PORT) : undefined;
  return Object.freeze({
    logLevel: env.LOGLEVEL ?? 'INFO',
    configFile: env.DATAGRAIL_AGENT_CONFIG_FILE || undefined,
    configJson: env.DATAGRAIL_AGENT_CONFIG || undefined,
    port: Number.isInteger(port) ? port : undefined,
    dataDir: env.DSR_AGENT_DATA_DIR || undefined,
    awsEndpointOverride: Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL),
  });
}
