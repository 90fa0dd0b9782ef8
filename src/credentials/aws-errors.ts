/** Mapping AWS SDK failures to AgentErrors that name the location and the provider, never the secret. */
import { AgentError, ErrorCodes } from '../errors.js';

/** What a provider tells {@link toAgentError} about itself. */
export interface AwsProviderContext {
  /** Config name of the provider, e.g. "AWSSecretsManager". */
  readonly provider: string;
  /** Human service name, e.g. "Secrets Manager". */
  readonly service: string;
  /** The IAM action the agent needs, e.g. "secretsmanager:GetSecretValue". */
  readonly permission: string;
  /** Extra advice on KMS for an access-denied message. */
  readonly kmsHint: string;
  /** Error names that mean "no such secret". */
  readonly notFound: readonly string[];
}

const DENIED = new Set(['AccessDeniedException', 'AccessDenied', 'DecryptionFailure']);
const BAD_CREDENTIALS = new Set([
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'ExpiredToken',
]);

/** The SDK attaches the raw response text to body-parsing errors; it may hold the secret. */
function mayQuoteResponse(err: Error): boolean {
  return err instanceof SyntaxError || err.name === 'SyntaxError' || '$responseBodyText' in err;
}

/** "ThrottlingException (HTTP 400): Rate exceeded", without anything that may quote a response body. */
export function describeAwsError(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error';
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const code = (err as NodeJS.ErrnoException).code;
  const name = err.name === 'Error' && code ? code : err.name;
  const head = status ? `${name} (HTTP ${status})` : name;
  if (err.name === 'SyntaxError') return `the answer is not valid JSON (${head})`;
  if (mayQuoteResponse(err) || !err.message || err.message === name) return head;
  return `${head}: ${err.message}`;
}

/**
 * Turn what a GetSecretValue/GetParameter call threw into an AgentError: SECRET_NOT_FOUND,
 * SECRET_ACCESS_DENIED (with the IAM permission needed) or SECRET_PROVIDER_ERROR (with `cause`, unless the
 * error may quote the response body). `region` is the client's region when known.
 */
export function toAgentError(
  err: unknown,
  ctx: AwsProviderContext,
  location: string,
  region: string | undefined,
  timeoutMs: number,
): AgentError {
  if (err instanceof AgentError) return err;
  const name = err instanceof Error ? err.name : '';
  const where = region ? ` in region ${region}` : '';
  const grant = `grant the agent's IAM identity ${ctx.permission} on ${location}`;
  if (ctx.notFound.includes(name)) {
    return new AgentError(
      ErrorCodes.SECRET_NOT_FOUND,
      `${ctx.provider}: there is no secret at ${location}${where}. Create it, or fix the connection's ` +
        `credentials_location (and AWS_REGION if the secret lives in another region).`,
    );
  }
  if (DENIED.has(name)) {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${ctx.provider}: access to ${location}${where} was denied (${name}): ${grant}; ${ctx.kmsHint}.`,
    );
  }
  if (BAD_CREDENTIALS.has(name)) {
    return new AgentError(
      ErrorCodes.SECRET_ACCESS_DENIED,
      `${ctx.provider}: AWS rejected the agent's credentials (${name}) reading ${location}${where}. Check ` +
        `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance/task role, then ${grant}.`,
    );
  }
  const reason =
    name === 'AbortError' || name === 'TimeoutError'
      ? `no answer within ${timeoutMs / 1000} s`
      : describeAwsError(err);
  const safe = err instanceof Error && !mayQuoteResponse(err);
  return new AgentError(
    ErrorCodes.SECRET_PROVIDER_ERROR,
    `${ctx.provider}: reading ${location}${where} failed: ${reason}. Check AWS_REGION, the AWS credentials and ` +
      `that ${ctx.service} is reachable (AWS_ENDPOINT_URL* if set), then retry.`,
    safe ? { cause: err } : {},
  );
}

/** The client's region, or undefined when it cannot be resolved (e.g. no AWS_REGION). */
export async function resolveRegion(config: { region: () => Promise<string> }): Promise<string | undefined> {
  try {
    return await config.region();
  } catch {
    return undefined;
  }
}
