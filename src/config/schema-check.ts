/**
 * Run the JSON Schemas over a parsed config and turn ajv's errors into problems a person can
 * act on: what is wrong, where, and how to fix it. Messages name fields, never echo values
 * (a value may be a secret), with one exception: an unsupported connector_type is named.
 */
import { ACCEPTED_CONNECTOR_TYPES, RUNNABLE_CONNECTOR_TYPES } from './types.js';
import type { ConfigProblem } from '../errors.js';
import { pointer, pointerSegments } from './problems.js';
import { getConfigValidator, type SchemaError } from './schemas.js';

const CAPABILITIES = 'privacy/access, privacy/delete, privacy/optout, privacy/identifiers';
const QUERY_LISTS = new Set(['test', 'access', 'delete', 'optout']);
const CODE_LISTS = new Set(['valid_response_codes', 'fail_retry_response_codes']);

/** How each titled object schema is named in "the fields of … are" messages. */
const OBJECT_NAMES: Readonly<Record<string, string>> = {
  'agent config': 'the config',
  connection: 'a connection',
  'APIProxy queries': 'queries',
  'APIProxy query': 'an APIProxy query',
  platform: 'platform',
  credentials_manager: 'platform.credentials_manager',
  storage_manager: 'platform.storage_manager',
  'agent options': 'agent',
};

/** What a field must look like, for format/pattern errors and as an example for type errors. */
const FIELD_FORMS: Readonly<Record<string, string>> = {
  uuid: 'a UUID, e.g. "44d9e703-b8cf-40a8-a138-3cc110319b0d"',
  verb: 'an HTTP method such as "GET", "POST", "PUT" or "DELETE" (a single word, no spaces)',
  url: 'an absolute http:// or https:// URL, e.g. "https://api.example.com/v0/users?email={email}"',
  callback_url: 'an absolute http:// or https:// URL, e.g. "https://dsr.example.com/callback"',
  redis_url: 'a redis:// or rediss:// URL, e.g. "redis://127.0.0.1:6379"',
  verify_ssl: '"true" or "false"',
  mode: '"live" or "test"',
};

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  object: 'a JSON object',
  array: 'a JSON array',
  boolean: 'true or false',
  null: 'null',
};

/** Where in the config a path points, for wording messages. */
interface Place {
  /** The field's own name (for an array item: the array's name). */
  field: string;
  /** Human label, e.g. "'verb'", "header 'Authorization'", "each capability". */
  label: string;
}

/** Name the place a path points to. Header names and identifier names are map keys, not fields. */
function placeOf(path: string): Place {
  const s = pointerSegments(path);
  if (s.length === 0) return { field: '', label: 'the config' };
  const last = s[s.length - 1];
  const parent = s[s.length - 2];
  const grand = s[s.length - 3];
  if (parent === 'headers') return { field: 'headers/*', label: `header '${last}'` };
  if (parent === 'identifiers' && grand === 'queries') return { field: 'identifiers/*', label: `identifier '${last}'` };
  if (/^\d+$/.test(last)) {
    if (parent === 'capabilities') return { field: 'capabilities/*', label: 'each capability' };
    if (parent === 'connections') return { field: 'connections/*', label: 'each connection' };
    if (CODE_LISTS.has(parent)) return { field: 'code', label: `each of '${parent}'` };
    if (QUERY_LISTS.has(parent) || grand === 'identifiers') return { field: 'query', label: 'each query' };
    return { field: parent, label: `each item of '${parent}'` };
  }
  return { field: last, label: `'${last}'` };
}

function parentSchemaOf(e: SchemaError): Record<string, unknown> {
  return (e.parentSchema ?? {}) as Record<string, unknown>;
}

function describeRequired(e: SchemaError, missing: string): string {
  const props = (parentSchemaOf(e).properties ?? {}) as Record<string, { description?: string }>;
  const description = props[missing]?.description;
  return `add the required field '${missing}'${description ? `: ${lowerFirst(description).replace(/\.$/, '')}` : ''}`;
}

const lowerFirst = (s: string): string => (/^[A-Z][a-z]/.test(s) ? s[0].toLowerCase() + s.slice(1) : s);

/** Levenshtein distance, for "did you mean" on unknown fields. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

function unknownField(e: SchemaError, key: string): string {
  const schema = parentSchemaOf(e);
  const fields = Object.keys((schema.properties ?? {}) as object);
  const title = typeof schema.title === 'string' ? schema.title : '';
  const where = OBJECT_NAMES[title] ?? (title ? `'${title}'` : 'this object');
  const lower = key.toLowerCase();
  const best = fields
    .map((f) => ({ f, d: distance(lower, f.toLowerCase()) }))
    .filter(({ f, d }) => d <= Math.max(1, Math.floor(f.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  const hint = best ? ` (did you mean '${best.f}'?)` : '';
  return `unknown field '${key}'${hint}; the fields of ${where} are ${fields.join(', ')}`;
}

function enumMessage(e: SchemaError, place: Place): string {
  if (place.field === 'connector_type') {
    const supported = `supported: ${RUNNABLE_CONNECTOR_TYPES.join(', ')} (accepted but not run: ${ACCEPTED_CONNECTOR_TYPES.join(', ')})`;
    if (typeof e.data !== 'string') return `'connector_type' must be a string; ${supported}`;
    return `connector_type '${e.data.slice(0, 60)}' is not supported; ${supported}`;
  }
  const form = FIELD_FORMS[place.field];
  if (form) return `${place.label} must be ${form}`;
  if (place.field === 'capabilities/*') return `each capability must be one of ${CAPABILITIES}`;
  const allowed = ((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v));
  return `${place.label} must be one of ${allowed.join(', ')}`;
}

/** Turn one ajv error into a problem, or undefined for errors another error already explains. */
function translate(e: SchemaError): ConfigProblem | undefined {
  // The branches of an anyOf report their own `required`s; the anyOf error itself says it better.
  if (/\/anyOf\/\d+\//.test(e.schemaPath)) return undefined;
  // "must match then/else": the errors inside the branch say what is wrong.
  if (e.keyword === 'if') return undefined;
  const place = placeOf(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const at = (message: string, path = e.instancePath): ConfigProblem => ({ path, message });
  switch (e.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      return at(describeRequired(e, missing), e.instancePath + pointer(missing));
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return at(unknownField(e, key), e.instancePath + pointer(key));
    }
    case 'anyOf': {
      const props = (parentSchemaOf(e).properties ?? {}) as Record<string, unknown>;
      if ('credentials_location' in props) {
        return at(
          `${describeRequired(e, 'credentials_location')} (credentials_arn is accepted as another name)`,
          e.instancePath + pointer('credentials_location'),
        );
      }
      return at(`${place.label} does not match any of the allowed forms`);
    }
    case 'type': {
      const type = String(params.type);
      let message = `${place.label} must be ${TYPE_WORDS[type] ?? type}`;
      if (place.field === 'headers/*') message += ' (write numbers and booleans in quotes)';
      else if (QUERY_LISTS.has(place.field) || place.field === 'identifiers/*') message += ' of queries';
      else if (FIELD_FORMS[place.field]) message += `: ${FIELD_FORMS[place.field]}`;
      return at(message);
    }
    case 'enum':
      return at(enumMessage(e, place));
    case 'format':
    case 'pattern': {
      const form = FIELD_FORMS[place.field];
      return at(form ? `${place.label} must be ${form}` : `${place.label} has the wrong form (${e.message ?? ''})`);
    }
    case 'minimum':
    case 'maximum':
      if (place.field === 'code') return at(`${place.label} must be an HTTP status code, from 100 to 599`);
      return at(`${place.label} must be at ${e.keyword === 'minimum' ? 'least' : 'most'} ${String(params.limit)}`);
    case 'minLength':
      return at(`${place.label} must not be empty`);
    case 'minItems':
      if (place.field === 'capabilities') return at(`'capabilities' must list at least one of ${CAPABILITIES}`);
      if (place.field === 'identifiers/*') {
        return at(`${place.label} needs at least one query; add one or remove the identifier`);
      }
      return at(`${place.label} needs at least ${String(params.limit)} item(s)`);
    case 'uniqueItems':
      return at(
        `${place.label} lists the same value twice (items ${String(params.j)} and ${String(params.i)}); list each once`,
      );
    default:
      return at(`${place.label} ${e.message ?? 'is invalid'}`);
  }
}

/** Check a parsed config against the schemas; every problem, translated, in ajv's order. */
export function checkSchema(raw: unknown): ConfigProblem[] {
  const validate = getConfigValidator();
  if (validate(raw)) return [];
  const problems: ConfigProblem[] = [];
  for (const e of validate.errors ?? []) {
    const p = translate(e);
    if (p) problems.push(p);
  }
  return problems;
}
