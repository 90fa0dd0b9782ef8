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
  /** Azure: a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), else a managed identity / DefaultAzureCredential. */
  readonly azure: {
    readonly tenantId?: string;
    readonly clientId?: string;
    readonly clientSecret?: string;
    /** AZURE_AUTHORITY_HOST: the Entra ID endpoint (sovereign clouds, tests). */
    readonly authorityHost?: string;
    /** AZURE_STORAGE_CONNECTION_STRING: a Blob connection string (an Azurite one for local runs); takes precedence over the credential. */
    readonly storageConnectionString?: string;
    /** AZURE_KEYVAULT_URL: the vault URL, overriding https://<secret_vault>.vault.azure.net (tests, private endpoints). */
    readonly keyVaultUrl?: string;
  };
  /** Google Cloud: service-account JSON itself (GOOGLE_APPLICATION_CREDENTIALS_JSON, DataGrail's variable) or its path, else the metadata server. */
  readonly gcp: {
    readonly credentialsJson?: string;
    readonly credentialsFile?: string;
    /** STORAGE_EMULATOR_HOST: a Cloud Storage emulator, e.g. http://127.0.0.1:4443. */
    readonly storageEmulatorHost?: string;
    /** GCP_SECRET_MANAGER_ENDPOINT: the Secret Manager REST endpoint, overriding secretmanager.googleapis.com (tests, private endpoints). */
    readonly secretManagerEndpoint?: string;
  };
  /** Backblaze B2 keys (BACKBLAZE_ACCESS_KEY_ID, BACKBLAZE_SECRET_ACCESS_KEY); without them the AWS_* ones. */
  readonly backblaze: { readonly accessKeyId?: string; readonly secretAccessKey?: string };
  /** NODE_OPTIONS: node flags the user set; the CLI adds its heap flags only where these set none (src/heap-flags.ts). */
  readonly nodeOptions?: string;
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
    azure: Object.freeze({
      tenantId: env.AZURE_TENANT_ID || undefined,
      clientId: env.AZURE_CLIENT_ID || undefined,
      clientSecret: env.AZURE_CLIENT_SECRET || undefined,
      authorityHost: env.AZURE_AUTHORITY_HOST || undefined,
      storageConnectionString: env.AZURE_STORAGE_CONNECTION_STRING || undefined,
      keyVaultUrl: env.AZURE_KEYVAULT_URL || undefined,
    }),
    gcp: Object.freeze({
      credentialsJson: env.GOOGLE_APPLICATION_CREDENTIALS_JSON || undefined,
      credentialsFile: env.GOOGLE_APPLICATION_CREDENTIALS || undefined,
      storageEmulatorHost: env.STORAGE_EMULATOR_HOST || undefined,
      secretManagerEndpoint: env.GCP_SECRET_MANAGER_ENDPOINT || undefined,
    }),
    backblaze: Object.freeze({
      accessKeyId: env.BACKBLAZE_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.BACKBLAZE_SECRET_ACCESS_KEY || undefined,
    }),
    nodeOptions: env.NODE_OPTIONS || undefined,
  });
}
