/**
 * The job API's JSON Schemas (draft-07, `schemas/api/*.json` at the package root) and the validators the
 * server compiles from them. The same files feed request validation, response serialization and the
 * generated OpenAPI document, so the docs cannot drift from what the server enforces.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type Options as AjvOptions } from 'ajv';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// Under NodeNext the CommonJS default export of ajv-formats sits at `.default`.
const addFormats = (addFormatsModule as unknown as { default: FormatsPlugin }).default;

/** Folder holding the API schemas: `<package root>/schemas/api` (this module is src/server/ or dist/server/). */
export const API_SCHEMA_DIR = fileURLToPath(new URL('../../schemas/api/', import.meta.url));

/** An API schema as parsed from its file; `$id` is its short name (e.g. "JobRequest"), referenced as `"JobRequest#"`. */
export type ApiSchema = { $id: string } & Record<string, unknown>;

/** Read every `*.schema.json` in `dir` (default {@link API_SCHEMA_DIR}), sorted by file name. */
export function readApiSchemas(dir: string = API_SCHEMA_DIR): ApiSchema[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()
    .map((f) => {
      const schema = JSON.parse(readFileSync(`${dir.endsWith('/') ? dir : `${dir}/`}${f}`, 'utf8')) as ApiSchema;
      if (typeof schema.$id !== 'string') throw new Error(`schemas/api/${f} has no $id`);
      return schema;
    });
}

/** A `$ref` to a shared API schema by its `$id`. */
export function ref(id: string): { $ref: string } {
  return { $ref: `${id}#` };
}

function makeAjv(options: AjvOptions, schemas: readonly ApiSchema[]): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: false, ...options });
  addFormats(ajv, ['date-time', 'uuid']);
  for (const s of schemas) ajv.addSchema(s);
  return ajv;
}

/**
 * The server's validator compiler. Bodies are validated as sent: no type coercion (a number where a
 * string is expected is an error, not "123"), no silently dropped properties (an unknown one is an
 * error), so a typo never changes what a job does. Query strings and path parameters arrive as strings
 * and are coerced (`?wait=5` → 5).
 */
export function makeValidatorCompiler(schemas: readonly ApiSchema[]): FastifySchemaCompiler<unknown> {
  const strict = makeAjv({ coerceTypes: false, removeAdditional: false, useDefaults: false }, schemas);
  const coercing = makeAjv({ coerceTypes: true, removeAdditional: false, useDefaults: true }, schemas);
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
