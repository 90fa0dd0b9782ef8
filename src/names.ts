/**
 * The one rule for names that fill templates: a `{name}` or `%(name)s` placeholder, a request's
 * identifier name, a token name. Python's str.format field name, restricted to ASCII. The JSON
 * Schemas' patterns for these names are checked against it in a test.
 */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
