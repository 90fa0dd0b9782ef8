/**
 * The connector of each connector_type. A type's module is loaded on first use, so a config
 * without database or SSH connections never loads a driver.
 */
import { AgentError, ErrorCodes } from '../errors.js';
import { RUNNABLE_CONNECTOR_TYPES, type ConnectorType } from '../config/types.js';
import type { Connector } from './types.js';

export type { Connector, ConnectorRun, RunStatement, PlannedStatement } from './types.js';

/** The connectors of one engine. */
export interface ConnectorRegistry {
  /** The connector of `type`, its module loaded on first use; rejects with CONNECTOR_UNSUPPORTED for a type this version does not run. */
  get(type: ConnectorType): Promise<Connector>;
  /** Close every connector that was opened (pools, clients). */
  close(): Promise<void>;
}

/** Builds one connector type. */
export type ConnectorFactory = () => Promise<Connector>;

/** The database and SSH connectors, each loaded when a connection of its type first runs. */
export const DEFAULT_FACTORIES: Readonly<Partial<Record<ConnectorType, ConnectorFactory>>> = {
  Postgres: async () => (await import('./postgres.js')).makePostgresConnector({ flavor: 'Postgres' }),
  Redshift: async () => (await import('./postgres.js')).makePostgresConnector({ flavor: 'Redshift' }),
  MySQL: async () => (await import('./mysql.js')).makeMysqlConnector(),
  SSH: async () => (await import('./ssh.js')).makeSshConnector(),
};

/** The error for a type the config accepts but this version does not run. */
function unsupported(type: ConnectorType): AgentError {
  return new AgentError(
    ErrorCodes.CONNECTOR_UNSUPPORTED,
    `connector_type ${type} is accepted in the config but this version of dsr-agent does not run it; it runs ${RUNNABLE_CONNECTOR_TYPES.join(', ')}`,
  );
}

/** The registry: APIProxy as given, the other runnable types from `factories` (loaded on first use), the accepted-only types unsupported. */
export function makeConnectorRegistry(apiProxy: Connector, factories = DEFAULT_FACTORIES): ConnectorRegistry {
  const loading = new Map<ConnectorType, Promise<Connector>>([['APIProxy', Promise.resolve(apiProxy)]]);
  const opened: Connector[] = [apiProxy];
  return {
    get(type) {
      let c = loading.get(type);
      if (!c) {
        const factory = factories[type];
        c = factory
          ? factory().then((x) => {
              opened.push(x);
              return x;
            })
          : Promise.reject(unsupported(type));
        // A module that failed to load is tried again next time.
        if (factory) {
          c.catch(() => loading.delete(type));
          loading.set(type, c);
        }
      }
      return c;
    },
    async close() {
      await Promise.all(opened.map((c) => c.close()));
    },
  };
}
