/**
 * A fake AWS SSM Parameter Store (GetParameter only) for tests that drive the real @aws-sdk/client-ssm:
 * point AWS_ENDPOINT_URL_SSM at `url`.
 */
import { startAwsJsonServer, toStoredText } from './aws-json-server.js';

/** A running fake Parameter Store. Mutate `parameters` and `deny` at any time. */
export interface FakeSSM {
  /** Endpoint URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Parameter name → value (answered as a SecureString). */
  parameters: Map<string, string>;
  /** Names answered with 400 AccessDeniedException. */
  deny: Set<string>;
  /** Every parameter name requested, in order. */
  calls: string[];
  /** For each entry of `calls`: whether the request had `WithDecryption: true`. */
  withDecryption: boolean[];
  /** Stop the server and close its connections. */
  close(): Promise<void>;
}

/**
 * Start a fake Parameter Store on 127.0.0.1, port 0. `initial` maps name → value: a string is stored
 * verbatim, anything else JSON-encoded. A missing name answers 400 ParameterNotFound.
 */
export async function startSSM(initial: Record<string, unknown> = {}): Promise<FakeSSM> {
  const parameters = new Map(Object.entries(initial).map(([name, value]) => [name, toStoredText(value)]));
  const deny = new Set<string>();
  const calls: string[] = [];
  const withDecryption: boolean[] = [];
  const server = await startAwsJsonServer({
    'AmazonSSM.GetParameter': (input) => {
      const name = String(input.Name);
      calls.push(name);
      withDecryption.push(input.WithDecryption === true);
      if (deny.has(name)) {
        return {
          error: 'AccessDeniedException',
          message: `User: arn:aws:iam::123456789012:user/test is not authorized to perform: ssm:GetParameter on resource: ${name}`,
        };
      }
      const value = parameters.get(name);
      if (value === undefined) return { error: 'ParameterNotFound', message: '' };
      return { body: { Parameter: { Name: name, Type: 'SecureString', Value: value, Version: 1 } } };
    },
  });
  return { url: server.url, parameters, deny, calls, withDecryption, close: server.close };
}
