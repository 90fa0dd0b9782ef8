import { AgentError, ErrorCodes } from '../errors.js';
import { CAPABILITY_FOR, type AgentConfig, type Connection, type RequestType } from '../config/types.js';

/** A connection chosen for a job, or the reason it sits this one out. */
export interface Selection {
  readonly connection: Connection;
  /** Set when the connection is skipped; `failWith` when it was named but cannot run the type. */
  readonly skip?: string;
  readonly failWith?: AgentError;
}

/** Find a connection by uuid or name; throws CONNECTION_NOT_FOUND listing the known ones. */
export function findConnection(config: AgentConfig, key: string): Connection {
  const c = config.connections.find((x) => x.uuid === key) ?? config.connections.find((x) => x.name === key);
  if (!c) {
    const known = config.connections.map((x) => `'${x.name}' (${x.uuid})`).join(', ') || 'none';
    throw new AgentError(ErrorCodes.CONNECTION_NOT_FOUND, `no connection named or with uuid '${key}'; configured connections: ${known}`);
  }
  return c;
}

/**
 * Decide which connections take part in a request. Without `names`, every live connection with
 * the type's capability runs and the others are skipped. Named connections run whatever their
 * mode; a named connection without the capability fails with CAPABILITY_MISSING.
 */
export function selectConnections(config: AgentConfig, type: RequestType, names?: readonly string[]): Selection[] {
  const capability = CAPABILITY_FOR[type];
  if (names && names.length > 0) {
    const seen = new Set<string>();
    const out: Selection[] = [];
    for (const key of names) {
      const connection = findConnection(config, key);
      if (seen.has(connection.uuid)) continue;
      seen.add(connection.uuid);
      out.push(
        connection.capabilities.includes(capability)
          ? { connection }
          : { connection, failWith: new AgentError(ErrorCodes.CAPABILITY_MISSING, `connection '${connection.name}' does not have the ${capability} capability; add it (and queries.${type}) to run ${type} requests`) },
      );
    }
    return out;
  }
  return config.connections.map((connection) => {
    if (!connection.capabilities.includes(capability)) return { connection, skip: `no ${capability} capability` };
    if (connection.mode !== 'live') return { connection, skip: 'mode is "test" (name it explicitly to include it)' };
    return { connection };
  });
}
