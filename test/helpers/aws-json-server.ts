/**
 * A tiny node:http server speaking the AWS JSON 1.1 protocol (POST /, `x-amz-target`, JSON body), the
 * shared core of the Secrets Manager and SSM fakes. It does not check signatures.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What an operation handler answers: HTTP 200 with `body` (JSON-encoded), HTTP 400 with an AWS error type,
 * `raw` text with a status (malformed answers), or `hang` (never answers; the client must time out).
 */
export type AwsJsonReply =
  | { body: unknown }
  | { error: string; message: string }
  | { raw: string; status: number }
  | { hang: true };

/** A started AWS JSON server. */
export interface AwsJsonServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Close the server and every open (keep-alive) connection. */
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': '00000000-0000-4000-8000-000000000000',
  });
  res.end(text);
}

/**
 * Start a server on 127.0.0.1, port 0. `handlers` maps an `x-amz-target` value (e.g.
 * `secretsmanager.GetSecretValue`) to a function of the parsed request body.
 * Unknown targets answer 400 UnknownOperationException; a body that is not JSON, 400 SerializationException.
 */
export async function startAwsJsonServer(
  handlers: Record<string, (input: Record<string, unknown>) => AwsJsonReply>,
): Promise<AwsJsonServer> {
  const server = createServer((req, res) => {
    readBody(req).then(
      (text) => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const handler = req.method === 'POST' ? handlers[target] : undefined;
        if (!handler) {
          send(res, 400, { __type: 'UnknownOperationException', message: `unknown operation ${target}` });
          return;
        }
        let input: Record<string, unknown>;
        try {
          input = JSON.parse(text || '{}') as Record<string, unknown>;
        } catch {
          send(res, 400, { __type: 'SerializationException', message: 'request body is not JSON' });
          return;
        }
        const reply = handler(input);
        if ('hang' in reply) return;
        if ('raw' in reply) {
          res.writeHead(reply.status, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(reply.raw);
        } else if ('error' in reply) send(res, 400, { __type: reply.error, message: reply.message });
        else send(res, 200, reply.body);
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** A value as stored by a fake: strings as they are (so tests can store non-JSON), anything else as JSON. */
export function toStoredText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Variables that would let the SDK look outside the test (profiles, instance metadata, other endpoints). */
const ISOLATING_ENV = [
  'AWS_PROFILE',
  'AWS_SESSION_TOKEN',
  'AWS_ENDPOINT_URL',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_EC2_METADATA_DISABLED',
  'AWS_MAX_ATTEMPTS',
];

/**
 * Point the AWS SDK at a fake: sets AWS_REGION=us-east-1, dummy static keys, disables instance metadata and
 * sets `endpoints` (e.g. { AWS_ENDPOINT_URL_SSM: url }). Returns a function restoring the previous values.
 */
export function setAwsTestEnv(endpoints: Record<string, string>): () => void {
  const vars: Record<string, string | undefined> = {
    ...Object.fromEntries(ISOLATING_ENV.map((name) => [name, undefined])),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDTEST',
    AWS_SECRET_ACCESS_KEY: 'test-secret-key',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    ...endpoints,
  };
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>): void => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  return () => apply(saved);
}
