/**
 * The config's JSON Schemas (draft 2020-12) in `schemas/` at the package root, and the ajv
 * validator compiled from them. The files are read at run time so that the same files feed
 * validation and the generated API docs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// Under NodeNext the CommonJS default export of ajv-formats sits at `.default`.
const addFormats = addFormatsModule.default;

/** Folder holding the schema files: `<package root>/schemas` (this module is src/config/ or dist/config/). */
export const SCHEMA_DIR = fileURLToPath(new URL('../../schemas/', import.meta.url));

/** File names of the schemas, the root one first. */
export const SCHEMA_FILES = [
  'agent-config.schema.json',
  'connection.schema.json',
  'apiproxy-query.schema.json',
] as const;

/** A JSON Schema as parsed from its file. */
export type JsonSchema = Record<string, unknown>;

/** Read and parse every schema file, keyed by file name. */
export function readSchemas(dir: string = SCHEMA_DIR): Record<(typeof SCHEMA_FILES)[number], JsonSchema> {
  const out = {} as Record<(typeof SCHEMA_FILES)[number], JsonSchema>;
  for (const file of SCHEMA_FILES) {
    out[file] = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  }
  return out;
}

let compiled: ValidateFunction | undefined;

/**
 * The compiled validator for the whole agent config (allErrors, strict mode, `verbose` so each
 * error carries its parent schema). Compiled on first use and then reused: it is immutable.
 */
export function getConfigValidator(): ValidateFunction {
  if (compiled) return compiled;
  // strictRequired is off because a connection requires credentials_location OR its alias
  // credentials_arn (an anyOf of two `required`s); every other strict check stays on.
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, verbose: true });
  addFormats(ajv, ['uuid', 'uri']);
  const schemas = readSchemas();
  for (const schema of Object.values(schemas)) ajv.addSchema(schema);
  compiled = ajv.getSchema(String(schemas[SCHEMA_FILES[0]].$id)) as ValidateFunction;
  return compiled;
}

/** ajv's error type, re-exported for the translator. */
export type SchemaError = ErrorObject;
