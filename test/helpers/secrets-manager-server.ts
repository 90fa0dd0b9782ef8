/**
 * A fake AWS Secrets Manager (GetSecretValue only) for tests that drive the real
 * @aws-sdk/client-secrets-manager: point AWS_ENDPOINT_URL_SECRETS_MANAGER at `url`.
 */
import { startAwsJsonServer, toStoredText } from './aws-json-server.js';

/** A running fake Secrets Manager. Mutate `secrets` and `deny` at any time. */
export interface FakeSecretsManager {
  /** Endpoint URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** SecretId → SecretString. */
  secrets: Map<string, string>;
  /** SecretIds answered with 400 AccessDeniedException. */
  deny: Set<string>;
  /** Every SecretId requested, in order (denied and missing ones included). */
  calls: string[];
  /** Stop the server and close its connections. */
  close(): Promise<void>;
}

/**
 * Start a fake Secrets Manager on 127.0.0.1, port 0. `initial` maps SecretId → secret: a string is stored
 * as the SecretString verbatim (so tests can store non-JSON), anything else is stored JSON-encoded.
 * A missing SecretId answers 400 ResourceNotFoundException.
 */
export async function startSecretsManager(initial: Record<string, unknown> = {}): Promise<FakeSecretsManager> {
  const secrets = new Map(Object.entries(initial).map(([id, value]) => [id, toStoredText(value)]));
  const deny = new Set<string>();
  const calls: string[] = [];
  const server = await startAwsJsonServer({
    'secretsmanager.GetSecretValue': (input) => {
      const id = String(input.SecretId);
      calls.push(id);
      if (deny.has(id)) {
        return {
          error: 'AccessDeniedException',
          message: `User: arn:aws:iam::123456789012:user/test is not authorized to perform: secretsmanager:GetSecretValue on resource: ${id}`,
        };
      }
      const value = secrets.get(id);
      if (value === undefined) {
        return { error: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." };
      }
      const name = id.startsWith('arn:') ? id.split(':secret:')[1] ?? id : id;
      return {
        body: {
          ARN: id.startsWith('arn:') ? id : `arn:aws:secretsmanager:us-east-1:123456789012:secret:${id}-AbCdEf`,
          Name: name,
          SecretString: value,
          VersionId: '00000000-0000-4000-8000-000000000001',
          VersionStages: ['AWSCURRENT'],
          CreatedDate: 1700000000,
        },
      };
    },
  });
  return { url: server.url, secrets, deny, calls, close: server.close };
}
