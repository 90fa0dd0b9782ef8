/**
 * The one rule for names that fill templates: a `{name}` or `%(name)s` placeholder, a request's
 * identifier name, a token name. Python's str.format field name, restricted to ASCII. The JSON
 * Schemas' patterns for these names are checked against it in a test.
 */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The one rule for ids that become file names, object keys and URL path segments: job ids (a
 * client's idempotency key included) and connection uuids. 1–128 of `A-Z a-z 0-9 . _ -`, not `.`,
 * and no `..` anywhere. The API schema, the router, the queues and storage all use it.
 */
export const ID_PATTERN = /^(?!\.$)(?!.*\.\.)[A-Za-z0-9._-]{1,128}$/;
