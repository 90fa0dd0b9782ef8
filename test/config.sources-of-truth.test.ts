/** Each enum and default the schemas document is the one the code defines (one source of truth). */
import { describe, it, expect } from '@jest/globals';
import { readSchemas } from '../src/config/schemas.js';
import { CONNECTOR_TYPES, PAGINATE_STYLES, RUNNABLE_CONNECTOR_TYPES } from '../src/config/types.js';
import { CREDENTIALS_PROVIDERS } from '../src/credentials/index.js';
import { STORAGE_PROVIDERS } from '../src/storage/index.js';
import { DEFAULT_FACTORIES } from '../src/connectors/index.js';

const schemas = readSchemas() as Record<string, any>;
const platform = schemas['agent-config.schema.json'].properties.platform.properties;

describe('schemas against the code', () => {
  it('connector_type lists every connector type, and every runnable type but APIProxy has a module', () => {
    expect(schemas['connection.schema.json'].properties.connector_type.enum).toEqual([...CONNECTOR_TYPES]);
    expect(Object.keys(DEFAULT_FACTORIES).sort()).toEqual(RUNNABLE_CONNECTOR_TYPES.filter((t) => t !== 'APIProxy').sort());
  });

  it('the credentials and storage providers are the registered ones', () => {
    expect(platform.credentials_manager.properties.provider.enum).toEqual(CREDENTIALS_PROVIDERS.map((p) => p.name));
    expect(platform.storage_manager.properties.provider.enum).toEqual(STORAGE_PROVIDERS.map((p) => p.name));
  });

  it('paginate styles are the pagers the engine has', () => {
    expect(schemas['apiproxy-query.schema.json'].properties.paginate.properties.style.enum).toEqual([...PAGINATE_STYLES]);
  });
});

describe('the name rule', () => {
  it('the schemas accept exactly the names the templates and the job API accept', async () => {
    const { NAME_PATTERN } = await import('../src/names.js');
    const { readFileSync } = await import('node:fs');
    const jobRequest = JSON.parse(readFileSync(new URL('../schemas/api/job-request.schema.json', import.meta.url), 'utf8'));
    expect(schemas['connection.schema.json'].properties.tokens.propertyNames.pattern).toBe(NAME_PATTERN.source);
    expect(JSON.stringify(jobRequest)).toContain(JSON.stringify(NAME_PATTERN.source));
  });
});

describe('request source types', () => {
  it('the schema lists the adapters the code has', async () => {
    const { SOURCE_ADAPTERS } = await import('../src/sources/index.js');
    const { REQUEST_SOURCE_TYPES } = await import('../src/config/types.js');
    const schema = schemas['agent-config.schema.json'].$defs.requestSource.properties.type.enum;
    expect(schema).toEqual([...REQUEST_SOURCE_TYPES]);
    expect(SOURCE_ADAPTERS.map((a) => a.type)).toEqual([...REQUEST_SOURCE_TYPES]);
  });
});

describe('the id rule', () => {
  it('the job API schema, the queue and storage use one id rule', async () => {
    const { ID_PATTERN } = await import('../src/names.js');
    const { isJobId } = await import('../src/queue/common.js');
    const { isSafeSegment } = await import('../src/storage/paths.js');
    const { readFileSync } = await import('node:fs');
    const jobRequest = JSON.parse(readFileSync(new URL('../schemas/api/job-request.schema.json', import.meta.url), 'utf8'));
    expect(jobRequest.properties.id.pattern).toBe(ID_PATTERN.source);
    for (const id of ['a', 'dg-req.42', 'x'.repeat(128), '.', '..', 'a..b', 'x'.repeat(129), 'has space', '../up']) {
      expect([id, isJobId(id)]).toEqual([id, isSafeSegment(id)]);
      expect([id, isJobId(id)]).toEqual([id, ID_PATTERN.test(id)]);
    }
  });
});
