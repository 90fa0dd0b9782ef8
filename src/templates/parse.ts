import { NAME_PATTERN } from '../names.js';
import { AgentError, ErrorCodes } from '../errors.js';

/** One piece of a parsed template: literal text (braces already unescaped) or a named placeholder. */
export type TemplatePart = { readonly literal: string } | { readonly name: string };

/** A parsed template; immutable. Parse once (at config load), render many times. */
export interface Template {
  /** The template text as written in the config. */
  readonly source: string;
  /** Literals and placeholders in order; no two literals are adjacent and no literal is empty. */
  readonly parts: readonly TemplatePart[];
  /** The distinct placeholder names, in order of first use. */
  readonly variables: readonly string[];
}

/** What Python's str.format accepts as a plain field name, restricted to ASCII. */
const NAME = NAME_PATTERN;
const ONLY_NAMED = 'only named placeholders like {email} are supported';

/** "column 12", or "line 2, column 5" for a multi-line template; 1-based, counted in characters. */
export function describePosition(source: string, index: number): string {
  const before = source.slice(0, index);
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = [...before.slice(lineStart)].length + 1;
  if (!source.includes('\n')) return `column ${column}`;
  const line = before.split('\n').length;
  return `line ${line}, column ${column}`;
}

function quote(text: string): string {
  const chars = [...text];
  return chars.length > 32 ? `${chars.slice(0, 32).join('')}…` : text;
}

/** TEMPLATE_INVALID; `message` receives the position text of `index`. */
function invalid(source: string, index: number, message: (at: string) => string): AgentError {
  return new AgentError(ErrorCodes.TEMPLATE_INVALID, message(describePosition(source, index)));
}

/** Why `{field}` (the text between the braces) is not a plain named placeholder, as a full message. */
function fieldProblem(field: string, closed: boolean, at: string): string {
  const shown = `'{${quote(field)}${closed ? '}' : ''}'`;
  if (field === '') return `empty placeholder '{}' at ${at}: ${ONLY_NAMED}; write '{{}}' for literal braces`;
  const cut = field.search(/[!:]/);
  const arg = cut < 0 ? field : field.slice(0, cut);
  if (arg === '') return `placeholder ${shown} at ${at} has no name: ${ONLY_NAMED}`;
  if (/^[0-9]+([.[]|$)/.test(arg)) return `positional placeholder ${shown} at ${at}: ${ONLY_NAMED}`;
  if (/^[A-Za-z_][A-Za-z0-9_]*[.[]/.test(arg)) {
    return `attribute or index access in ${shown} at ${at} is not supported: ${ONLY_NAMED}`;
  }
  if (!NAME.test(arg)) {
    return (
      `${shown} at ${at} is not a valid placeholder name (letters, digits and '_', not starting with a digit): ` +
      `${ONLY_NAMED}; for a literal brace write '{{' or '}}' (a JSON body is written "{{\\"email\\": \\"{email}\\"}}")`
    );
  }
  if (field[cut] === '!') return `conversion in ${shown} at ${at} is not supported: ${ONLY_NAMED}, without '!r'/'!s'`;
  return `format spec in ${shown} at ${at} is not supported: ${ONLY_NAMED}, without ':...'`;
}

/**
 * Parse a DataGrail template with Python str.format semantics: `{name}` is a placeholder, `{{` and
 * `}}` are literal braces. Only plain names (`[A-Za-z_][A-Za-z0-9_]*`) are accepted.
 * Throws AgentError(TEMPLATE_INVALID) whose message gives the 1-based column (and line, for a
 * multi-line template) and the fix, e.g. "unbalanced '}' at column 12: write '}}' for a literal brace".
 */
export function parseSource(source: string): Template {
  const parts: TemplatePart[] = [];
  const variables: string[] = [];
  let literal = '';
  let runStart = 0; // start of the pending run of plain characters
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source.charCodeAt(i);
    if (c !== 0x7b /* { */ && c !== 0x7d /* } */) {
      i++;
      continue;
    }
    literal += source.slice(runStart, i);
    const next = source.charCodeAt(i + 1);
    if (c === 0x7d) {
      if (next !== 0x7d) throw invalid(source, i, (at) => `unbalanced '}' at ${at}: write '}}' for a literal brace`);
      literal += '}';
      i += 2;
      runStart = i;
      continue;
    }
    if (next === 0x7b) {
      literal += '{';
      i += 2;
      runStart = i;
      continue;
    }
    let j = i + 1;
    while (j < n && source[j] !== '}' && source[j] !== '{') j++;
    const field = source.slice(i + 1, j);
    if (j === n) {
      if (field === '') throw invalid(source, i, (at) => `unbalanced '{' at ${at}: write '{{' for a literal brace`);
      throw invalid(
        source,
        i,
        (at) => `unterminated placeholder '{${quote(field)}' at ${at}: close it with '}', or write '{{' for a literal brace`,
      );
    }
    if (source[j] === '{' || !NAME.test(field)) {
      // A nested '{' is either a format spec ({a:{w}}) or a literal brace the author forgot to double.
      if (source[j] === '{' && (field === '' || NAME.test(field))) {
        throw invalid(
          source,
          j,
          (at) => `unexpected '{' at ${at} inside a placeholder: close the placeholder with '}', or write '{{' for a literal brace`,
        );
      }
      throw invalid(source, i, (at) => fieldProblem(field, source[j] === '}', at));
    }
    if (literal !== '') parts.push(Object.freeze({ literal }));
    literal = '';
    parts.push(Object.freeze({ name: field }));
    if (!variables.includes(field)) variables.push(field);
    i = j + 1;
    runStart = i;
  }
  literal += source.slice(runStart);
  if (literal !== '') parts.push(Object.freeze({ literal }));
  // The outer object is left open: parseTemplate attaches the render plan, then freezes it.
  return { source, parts: Object.freeze(parts), variables: Object.freeze(variables) };
}
