/**
 * Reports in a Backblaze B2 bucket (DataGrail's `BackblazeB2`), through B2's S3-compatible API and the
 * S3 code of src/storage/s3.ts; the AWS SDK is loaded on first use.
 *
 * - Addressing: path-style requests to `options.endpoint` (the bucket's S3 endpoint, e.g.
 *   https://s3.us-west-004.backblazeb2.com) signed for `options.region` (us-west-004).
 * - Keys: BACKBLAZE_ACCESS_KEY_ID and BACKBLAZE_SECRET_ACCESS_KEY (a B2 application key: its keyID and
 *   applicationKey) when set, else the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
 *   AWS_SECRET_ACCESS_KEY, a profile, ...).
 * - Encryption: SSE-B2, B2's server-side AES-256 encryption with keys B2 manages, requested on every
 *   report (`x-amz-server-side-encryption: AES256`, which B2 supports). SSE-KMS does not exist on B2.
 * - Checksums only when an operation requires them: B2 rejects the SDK's newer default checksum headers.
 * - Locations: reports resolve to `s3://bucket/key`, the same form as AWSS3: the object's address in the
 *   S3 API of the endpoint (e.g. `aws s3 cp --endpoint-url <endpoint> s3://bucket/key .`). `description`
 *   adds the endpoint.
 */
import { AgentError, ErrorCodes } from '../errors.js';
import type { AgentEnv } from '../env.js';
import { lazyStorage } from './lazy.js';
import { checkPrefix, normalizePrefix } from './paths.js';
import { makeOptionChecker, type StorageProvider } from './provider.js';

const NAME = 'BackblazeB2';
const KEYS = ['bucket', 'endpoint', 'region', 'prefix'] as const;
/** B2's bucket naming rule: 6-63 letters, digits and "-", not starting with "b2-". */
const B2_BUCKET = /^[A-Za-z0-9-]{6,63}$/;
/** A B2 region, e.g. us-west-004 or eu-central-003. */
const REGION = /^[a-z0-9]+(-[a-z0-9]+)*$/;
/** The host of a B2 S3 endpoint, naming its region. */
const B2_HOST = /^s3\.([a-z0-9-]+)\.backblazeb2\.com$/;

const B2_HINT =
  "Check that the bucket exists, that endpoint and region are the bucket's (its S3 endpoint in the B2 console, e.g. " +
  'https://s3.us-west-004.backblazeb2.com and us-west-004), that the application key (BACKBLAZE_ACCESS_KEY_ID and ' +
  'BACKBLAZE_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) may writeFiles and deleteFiles in it, ' +
  'and that the endpoint is reachable.';

/** Problems with the `endpoint` option; undefined when it is an http(s) URL without credentials, query or fragment. */
function endpointProblem(endpoint: string): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'must be the bucket\'s S3 endpoint URL, e.g. "https://s3.us-west-004.backblazeb2.com"';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return 'must be an https:// URL (http:// for a local test server), e.g. "https://s3.us-west-004.backblazeb2.com"';
  }
  if (url.username || url.password) return 'must not carry credentials: set BACKBLAZE_ACCESS_KEY_ID and BACKBLAZE_SECRET_ACCESS_KEY instead';
  if (url.search || url.hash) return 'must not have a query or fragment: use the bare endpoint, e.g. "https://s3.us-west-004.backblazeb2.com"';
  return undefined;
}

/** The B2 keys from the environment, or undefined for the AWS SDK's default chain. Throws STORAGE_ERROR when only one is set. */
function b2Credentials(env: AgentEnv['backblaze']): { accessKeyId: string; secretAccessKey: string } | undefined {
  const { accessKeyId, secretAccessKey } = env;
  if (accessKeyId && secretAccessKey) return { accessKeyId, secretAccessKey };
  if (accessKeyId || secretAccessKey) {
    throw new AgentError(
      ErrorCodes.STORAGE_ERROR,
      `Only ${accessKeyId ? 'BACKBLAZE_ACCESS_KEY_ID' : 'BACKBLAZE_SECRET_ACCESS_KEY'} is set: set both BACKBLAZE_ACCESS_KEY_ID ` +
        "(the application key's keyID) and BACKBLAZE_SECRET_ACCESS_KEY (its applicationKey), or neither to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
    );
  }
  return undefined;
}

/**
 * BackblazeB2: options `bucket`, `endpoint` (the bucket's S3 endpoint URL), `region` (must match the
 * endpoint's on *.backblazeb2.com) and `prefix`. Reports go to
 * `<prefix>/<job id>/<connection uuid>/report_<n>.csv` with SSE-B2 (AES256); locations `s3://bucket/key`.
 */
export const backblazeB2Provider: StorageProvider = {
  name: NAME,
  check(options) {
    const c = makeOptionChecker(options, KEYS, NAME);
    const bucket = c.string('bucket', true, 'acme-dsr-reports');
    if (bucket !== undefined) {
      if (bucket.startsWith('s3://') || bucket.startsWith('b2://') || bucket.includes('/')) {
        c.add('bucket', 'must be a bare bucket name, not a URL or path: put folders in options.prefix');
      } else if (!B2_BUCKET.test(bucket) || /^b2-/i.test(bucket)) {
        c.add('bucket', 'is not a valid B2 bucket name: use 6-63 letters, digits or "-", not starting with "b2-"');
      }
    }
    const endpoint = c.string('endpoint', true, 'https://s3.us-west-004.backblazeb2.com');
    const endpointError = endpoint === undefined ? undefined : endpointProblem(endpoint);
    if (endpointError) c.add('endpoint', endpointError);
    const region = c.string('region', true, 'us-west-004');
    if (region !== undefined && !REGION.test(region)) {
      c.add('region', 'is not a region name: use the region of the bucket\'s endpoint, e.g. "us-west-004"');
    } else if (region !== undefined && endpoint !== undefined && !endpointError) {
      const endpointRegion = B2_HOST.exec(new URL(endpoint).hostname)?.[1];
      if (endpointRegion && endpointRegion !== region) {
        c.add('region', `does not match the endpoint, whose region is "${endpointRegion}": set region to "${endpointRegion}"`);
      }
    }
    checkPrefix(options.prefix, c.add);
    return c.problems;
  },
  make(options, ctx) {
    const bucket = options.bucket as string;
    const endpoint = options.endpoint as string;
    const region = options.region as string;
    const prefix = options.prefix === undefined ? '' : normalizePrefix(options.prefix as string)!;
    const description = `s3://${bucket}${prefix ? `/${prefix}` : ''} (Backblaze B2 at ${new URL(endpoint).origin})`;
    return lazyStorage(description, async () => {
      const credentials = b2Credentials(ctx.env.backblaze);
      const [{ S3Client }, { makeS3Storage }] = await Promise.all([import('@aws-sdk/client-s3'), import('./s3.js')]);
      const client = new S3Client({
        endpoint,
        region,
        forcePathStyle: true,
        ...(credentials ? { credentials } : {}),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      return makeS3Storage({ bucket, ...(prefix ? { prefix } : {}), sse: 'AES256', client, hint: B2_HINT });
    });
  },
};
