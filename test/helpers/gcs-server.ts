/**
 * An in-memory Cloud Storage emulator on node:http for tests: the parts of the GCS JSON API that
 * @google-cloud/storage uses for a simple (multipart) upload, a delete, and reading objects back.
 *
 * - POST /upload/storage/v1/b/<bucket>/o?uploadType=multipart&name=<object> (multipart/related: JSON
 *   metadata, then the media); answers the object resource with its crc32c and md5Hash, which the SDK
 *   checks against what it sent.
 * - DELETE, GET (metadata, or the bytes with alt=media) /storage/v1/b/<bucket>/o/<object>
 * - GET /storage/v1/b/<bucket>/o (list, with `prefix`), GET /storage/v1/b/<bucket>
 *
 * The JSON API routes are also served without `/storage/v1`, which is where the SDK sends them when
 * the STORAGE_EMULATOR_HOST environment variable is set. Errors use the JSON API's shape
 * (`{"error": {"code", "message", "errors": [{"reason"}]}}`). No authentication: the SDK sends none to
 * a custom endpoint; every request's Authorization header is recorded all the same.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A stored object. */
export interface GcsObject {
  readonly bytes: Buffer;
  readonly contentType?: string;
  /** The `kmsKeyName` query parameter of the upload (a customer-managed key), if any. */
  readonly kmsKeyName?: string;
  /** The object resource the server answered. */
  readonly resource: Record<string, unknown>;
}

/** One request the server received. */
export interface GcsRequest {
  readonly method: string;
  /** The path, percent-decoded, without the query. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: IncomingHttpHeaders;
}

/** What a fault hook answers instead of the normal handling: an error status with a JSON API error, or silence. */
export type GcsFault = { status: number; reason: string; message: string } | { hang: true };

/** A running emulator. */
export interface TestGcs {
  /** e.g. http://127.0.0.1:40123: the `apiEndpoint` (or STORAGE_EMULATOR_HOST) for the SDK. */
  readonly endpoint: string;
  /** Every request received, in order. */
  readonly requests: GcsRequest[];
  /** Create a bucket (idempotent). */
  addBucket(name: string): void;
  /** The object, or undefined. */
  object(bucket: string, name: string): GcsObject | undefined;
  /** The object names of a bucket, sorted ([] for a missing bucket). */
  names(bucket: string): string[];
  /** Answer every request for `bucket` with HTTP 403, as GCS does when IAM denies the service account. */
  deny(bucket: string, permission?: string): void;
  /** Answer requests for which `hook` returns a fault with that fault instead; undefined clears it. */
  setFault(hook: ((req: GcsRequest) => GcsFault | undefined) | undefined): void;
  /** Stop the server, dropping open keep-alive connections. */
  close(): Promise<void>;
}

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as GCS reports it: base64 of the big-endian value.
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** base64 of the big-endian CRC32C of `bytes`, the form of an object resource's `crc32c`. */
export function crc32cBase64(bytes: Buffer): string {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC32C_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, reason: string, message: string): void {
  sendJson(res, status, { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } });
}

/**
 * The parts of a multipart/related body: `--boundary\r\nContent-Type: x\r\n\r\n<body>\r\n` per part,
 * closed by `--boundary--`. Undefined when the body does not have that shape.
 */
function parseMultipart(body: Buffer, contentType: string): { headers: Record<string, string>; body: Buffer }[] | undefined {
  const match = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!/^multipart\/related/i.test(contentType) || !match) return undefined;
  const delimiter = Buffer.from(`--${match[1]}`);
  const parts: { headers: Record<string, string>; body: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  if (at !== 0) return undefined;
  for (;;) {
    const afterDelimiter = at + delimiter.length;
    if (body.subarray(afterDelimiter, afterDelimiter + 2).toString() === '--') return parts;
    if (body.subarray(afterDelimiter, afterDelimiter + 2).toString() !== '\r\n') return undefined;
    const headerEnd = body.indexOf('\r\n\r\n', afterDelimiter + 2);
    if (headerEnd < 0) return undefined;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) return undefined;
    const headers: Record<string, string> = {};
    for (const line of body.subarray(afterDelimiter + 2, headerEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
}

/** Start the emulator on 127.0.0.1, port 0, with the given buckets. */
export async function startGcs(buckets: readonly string[] = []): Promise<TestGcs> {
  const store = new Map<string, Map<string, GcsObject>>(buckets.map((b) => [b, new Map()]));
  const denied = new Map<string, string>();
  const requests: GcsRequest[] = [];
  let fault: ((req: GcsRequest) => GcsFault | undefined) | undefined;
  let generation = 1_700_000_000_000_000;

  function resourceOf(bucket: string, name: string, bytes: Buffer, contentType: string | undefined, kmsKeyName?: string) {
    const gen = String(generation++);
    const now = new Date().toISOString();
    return {
      kind: 'storage#object',
      id: `${bucket}/${name}/${gen}`,
      selfLink: `${endpoint}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`,
      mediaLink: `${endpoint}/download/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?generation=${gen}&alt=media`,
      name,
      bucket,
      generation: gen,
      metageneration: '1',
      ...(contentType ? { contentType } : {}),
      storageClass: 'STANDARD',
      size: String(bytes.length),
      md5Hash: createHash('md5').update(bytes).digest('base64'),
      crc32c: crc32cBase64(bytes),
      etag: Buffer.from(gen).toString('base64'),
      timeCreated: now,
      updated: now,
      ...(kmsKeyName ? { kmsKeyName: `${kmsKeyName}/cryptoKeyVersions/1` } : {}),
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const query = Object.fromEntries(url.searchParams);
    const path = url.pathname;
    const recorded: GcsRequest = { method: req.method ?? 'GET', path: decodeURIComponent(path), query, headers: req.headers };
    requests.push(recorded);
    const body = await readBody(req);

    const injected = fault?.(recorded);
    if (injected) {
      if ('hang' in injected) return;
      sendError(res, injected.status, injected.reason, injected.message);
      return;
    }

    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    const objectRoute = /^(?:\/storage\/v1)?\/b\/([^/]+)\/o\/(.+)$/.exec(path);
    const listRoute = /^(?:\/storage\/v1)?\/b\/([^/]+)\/o$/.exec(path);
    const bucketRoute = /^(?:\/storage\/v1)?\/b\/([^/]+)$/.exec(path);
    const bucket = decodeURIComponent((upload ?? objectRoute ?? listRoute ?? bucketRoute)?.[1] ?? '');
    if (!bucket) {
      sendError(res, 404, 'notFound', `Not Found: ${req.method} ${path}`);
      return;
    }
    const permission = denied.get(bucket);
    if (permission) {
      sendError(
        res,
        403,
        'forbidden',
        `dsr-agent@test-project.iam.gserviceaccount.com does not have ${permission} access to the Google Cloud Storage bucket. ` +
          `Permission '${permission}' denied on resource (or it may not exist).`,
      );
      return;
    }
    const objects = store.get(bucket);
    if (!objects) {
      sendError(res, 404, 'notFound', 'The specified bucket does not exist.');
      return;
    }

    if (upload && req.method === 'POST') {
      if (query.uploadType !== 'multipart') {
        sendError(res, 400, 'invalid', `This emulator supports uploadType=multipart only, not ${query.uploadType ?? 'none'}.`);
        return;
      }
      const parts = parseMultipart(body, String(req.headers['content-type'] ?? ''));
      if (!parts || parts.length !== 2) {
        sendError(res, 400, 'invalid', 'Expected a multipart/related body of metadata and media.');
        return;
      }
      let metadata: Record<string, unknown>;
      try {
        metadata = JSON.parse(parts[0].body.toString('utf8')) as Record<string, unknown>;
      } catch {
        sendError(res, 400, 'parseError', 'The metadata part is not JSON.');
        return;
      }
      const name = query.name ?? (typeof metadata.name === 'string' ? metadata.name : undefined);
      if (!name) {
        sendError(res, 400, 'required', 'Required parameter: name');
        return;
      }
      const bytes = Buffer.from(parts[1].body);
      const contentType = typeof metadata.contentType === 'string' ? metadata.contentType : parts[1].headers['content-type'];
      const resource = resourceOf(bucket, name, bytes, contentType, query.kmsKeyName);
      objects.set(name, { bytes, contentType, resource, ...(query.kmsKeyName ? { kmsKeyName: query.kmsKeyName } : {}) });
      sendJson(res, 200, resource);
      return;
    }
    if (objectRoute) {
      const name = decodeURIComponent(objectRoute[2]);
      const found = objects.get(name);
      if (!found) {
        sendError(res, 404, 'notFound', `No such object: ${bucket}/${name}`);
        return;
      }
      if (req.method === 'DELETE') {
        objects.delete(name);
        res.writeHead(204).end();
        return;
      }
      if (req.method === 'GET' && query.alt === 'media') {
        res.writeHead(200, { 'content-type': found.contentType ?? 'application/octet-stream', 'content-length': found.bytes.length });
        res.end(found.bytes);
        return;
      }
      if (req.method === 'GET') {
        sendJson(res, 200, found.resource);
        return;
      }
    }
    if (listRoute && req.method === 'GET') {
      const prefix = query.prefix ?? '';
      const items = [...objects.keys()].filter((n) => n.startsWith(prefix)).sort().map((n) => objects.get(n)!.resource);
      sendJson(res, 200, { kind: 'storage#objects', ...(items.length ? { items } : {}) });
      return;
    }
    if (bucketRoute && req.method === 'GET') {
      sendJson(res, 200, { kind: 'storage#bucket', id: bucket, name: bucket, location: 'US', storageClass: 'STANDARD' });
      return;
    }
    sendError(res, 405, 'methodNotAllowed', `${req.method} ${path} is not supported by this emulator.`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    endpoint,
    requests,
    addBucket(name) {
      if (!store.has(name)) store.set(name, new Map());
    },
    object: (bucket, name) => store.get(bucket)?.get(name),
    names: (bucket) => [...(store.get(bucket)?.keys() ?? [])].sort(),
    deny(bucket, permission = 'storage.objects.create') {
      denied.set(bucket, permission);
    },
    setFault(hook) {
      fault = hook;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
