/**
 * Shell quoting for SSH command lines. A command is a DataGrail template (`{name}` placeholders,
 * `{{`/`}}` literal braces) that the server's login shell parses; each identifier value goes in
 * with POSIX single-quote quoting (`'…'`, a `'` inside becomes `'\''`), so a value is always exactly
 * one shell word with exactly its text: it can never add an argument, a command, a redirection or
 * an expansion.
 *
 * Where the template author already quoted the placeholder (`--email '{email}'`, `"{email}"`),
 * the value is quoted for that context instead, so it still lands as the author's one word: inside
 * `'…'` each `'` becomes `'\''`; inside `"…"` the double quotes are closed around a single-quoted
 * value (`"…"'value'"…"`). Contexts where no quoting is safe (inside backticks, `$'…'`, `${…}`,
 * `$((…))`, a here-document, right after a backslash or a `$`) are refused with TEMPLATE_INVALID.
 *
 * CR, LF and NUL in a value are refused (IDENTIFIER_INVALID): a command line cannot carry NUL, and
 * a line break is where quoting bugs in remote scripts turn into injection.
 */
import { AgentError, ErrorCodes } from '../errors.js';
import { describePosition, type Template } from '../templates/parse.js';

/** POSIX single-quote quoting: `'…'`, each `'` inside becomes `'\''`. One shell word, no expansion. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/** How a placeholder is quoted, by where it sits in the template's shell syntax. */
export type QuoteContext = 'plain' | 'single' | 'double';

/** The value quoted for `context`, so the shell reads it as one word (part) holding exactly `value`. */
export function quoteFor(value: string, context: QuoteContext): string {
  switch (context) {
    case 'plain':
      return shellQuote(value);
    case 'single':
      // Already inside '…': close, escape the quote, reopen, for every quote of the value.
      return value.replaceAll("'", "'\\''");
    case 'double':
      // Inside "…": close the double quotes around a single-quoted value.
      return `"${shellQuote(value)}"`;
  }
}

/** Why `value` cannot go into a command line, or undefined when it can. Never quotes the value. */
export function identifierProblem(value: string): string | undefined {
  if (/[\r\n\0]/.test(value)) return 'contains a line break (CR/LF) or NUL, which cannot be passed to an SSH command';
  if (!value.isWellFormed()) return 'is not valid Unicode (it holds a lone surrogate)';
  return undefined;
}

/** A command template compiled for rendering: literals interleaved with names, each name's context. */
export interface ShellPlan {
  /** `literals[0] names[0] literals[1] … names[n-1] literals[n]`. */
  readonly literals: readonly string[];
  readonly names: readonly string[];
  readonly contexts: readonly QuoteContext[];
}

type Frame =
  | 'plain' // unquoted, at top level or inside $( … )
  | 'single' // '…'
  | 'double' // "…"
  | 'backtick' // `…`
  | 'ansi' // $'…'
  | 'param' // ${…}
  | 'arith' // $(( … ))
  | 'comment' // # … to end of line
  | 'heredoc'; // the rest of the template after a here-document starts

const WORD_BREAK = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);

/**
 * A small POSIX shell lexer that tracks only quoting: enough to know, at each placeholder, whether
 * the shell is unquoted, inside '…' or inside "…". Fed the template's literals in order.
 */
class QuoteTracker {
  private readonly stack: Frame[] = ['plain'];
  /** Paren depth of each `$(` / `$((` frame (parallel to `stack`; 0 for other frames). */
  private readonly depth: number[] = [0];
  /** A backslash escapes the next character, which is in the next literal or is the placeholder. */
  private escape = false;
  /** An unquoted `<<` was seen: the next line starts a here-document body. */
  private heredocPending = false;
  /** The last character fed, for word starts (comments) and a `$` right before a placeholder. */
  private last = '\n';

  get top(): Frame {
    return this.stack[this.stack.length - 1];
  }

  private push(frame: Frame, depth = 0): void {
    this.stack.push(frame);
    this.depth.push(depth);
  }

  private pop(): void {
    if (this.stack.length > 1) {
      this.stack.pop();
      this.depth.pop();
    }
  }

  /** Consume literal text. */
  feed(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      const next = text[i + 1];
      if (this.escape) {
        this.escape = false;
        this.last = 'x'; // an escaped character: not a word break, not a `$`
        continue;
      }
      const frame = this.top;
      switch (frame) {
        case 'heredoc':
          break;
        case 'comment':
          if (c === '\n') this.pop();
          break;
        case 'single':
          if (c === "'") this.pop();
          break;
        case 'ansi':
          if (c === '\\') this.escape = true;
          else if (c === "'") this.pop();
          break;
        case 'double':
          if (c === '\\') this.escape = true;
          else if (c === '"') this.pop();
          else if (c === '`') this.push('backtick');
          else if (c === '$' && next === '(' && text[i + 2] === '(') {
            this.push('arith', 2);
            i += 2;
          } else if (c === '$' && next === '(') {
            this.push('plain', 1);
            i++;
          } else if (c === '$' && next === '{') {
            this.push('param', 1);
            i++;
          }
          break;
        case 'param':
        case 'arith': {
          const open = frame === 'param' ? '{' : '(';
          const close = frame === 'param' ? '}' : ')';
          if (c === '\\') this.escape = true;
          else if (c === open) this.depth[this.depth.length - 1]++;
          else if (c === close && --this.depth[this.depth.length - 1] === 0) this.pop();
          break;
        }
        case 'backtick':
        case 'plain':
          i = this.plain(text, i, frame);
          break;
      }
      this.last = c;
    }
  }

  /** One character in unquoted (or backtick) context; returns the index of the last character used. */
  private plain(text: string, i: number, frame: 'plain' | 'backtick'): number {
    const c = text[i];
    const next = text[i + 1];
    if (c === '\\') this.escape = true;
    else if (c === "'") this.push('single');
    else if (c === '"') this.push('double');
    else if (c === '`') {
      if (frame === 'backtick') this.pop();
      else this.push('backtick');
    } else if (c === '$' && next === "'") {
      this.push('ansi');
      return i + 1;
    } else if (c === '$' && next === '(' && text[i + 2] === '(') {
      this.push('arith', 2);
      return i + 2;
    } else if (c === '$' && next === '(') {
      this.push('plain', 1);
      return i + 1;
    } else if (c === '$' && next === '{') {
      this.push('param', 1);
      return i + 1;
    } else if (c === '#' && WORD_BREAK.has(this.last)) {
      this.push('comment');
    } else if (c === '<' && next === '<' && text[i + 2] !== '<' && this.last !== '<') {
      this.heredocPending = true;
      return i + 1;
    } else if (c === '\n' && this.heredocPending) {
      // The here-document body starts; where it ends depends on its delimiter: refuse from here on.
      this.push('heredoc');
    } else if (frame === 'plain' && this.depth[this.depth.length - 1] > 0) {
      if (c === '(') this.depth[this.depth.length - 1]++;
      else if (c === ')' && --this.depth[this.depth.length - 1] === 0) this.pop();
    }
    return i;
  }

  /** A value was inserted: it is a complete word part (not a `$`, not a word break). */
  value(): void {
    this.last = 'x';
  }

  /** The context of a placeholder at this point, or why there is none that is safe. */
  context(): QuoteContext | string {
    const frame = this.top;
    if (this.escape) return 'follows a backslash, which would escape the quote around the value';
    if ((frame === 'plain' || frame === 'double') && this.last === '$') {
      return "follows a '$', which the shell would read as $'…' or $\"…\" quoting; remove the '$'";
    }
    switch (frame) {
      case 'plain':
      case 'comment':
        return 'plain';
      case 'single':
        return 'single';
      case 'double':
        return 'double';
      case 'backtick':
        return 'is inside `…` command substitution, where quoting is unreliable; write $(…) instead';
      case 'ansi':
        return "is inside $'…' quoting; put it outside the quotes";
      case 'param':
        return 'is inside a ${…} parameter expansion; put it outside';
      case 'arith':
        return 'is inside $((…)) arithmetic; put it outside';
      case 'heredoc':
        return 'comes after a here-document (<<) starts; pass the value as an argument instead';
    }
  }

  /** Why the template does not end at top level, or undefined. */
  unterminated(): string | undefined {
    if (this.escape) return 'ends with a lone backslash';
    const frame = this.top;
    if (frame === 'heredoc' || frame === 'comment') return undefined;
    if (this.stack.length === 1) return undefined;
    const what: Record<Frame, string> = {
      plain: "'$(' without its ')'",
      single: "a ' without its closing '",
      double: 'a " without its closing "',
      backtick: 'a ` without its closing `',
      ansi: "a $' without its closing '",
      param: "'${' without its '}'",
      arith: "'$((' without its '))'",
      comment: '',
      heredoc: '',
    };
    return `has ${what[frame]}`;
  }
}

const plans = new WeakMap<Template, ShellPlan>();

/** Where each placeholder of a valid template starts in its source (`{{` and `}}` skipped). */
function placeholderPositions(source: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if ((c === '{' || c === '}') && source[i + 1] === c) i++;
    else if (c === '{') {
      out.push(i);
      i = source.indexOf('}', i);
      if (i < 0) break;
    }
  }
  return out;
}

/**
 * Compile a command template: each placeholder's quoting context. Throws AgentError
 * (TEMPLATE_INVALID) when a placeholder sits where no quoting is safe, or when the template's
 * quotes do not balance (so the contexts could not be trusted). Cached per template.
 */
export function shellPlanOf(template: Template): ShellPlan {
  let plan = plans.get(template);
  if (plan !== undefined) return plan;
  const literals: string[] = [''];
  const names: string[] = [];
  const contexts: QuoteContext[] = [];
  const tracker = new QuoteTracker();
  const positions = placeholderPositions(template.source);
  for (const part of template.parts) {
    if ('literal' in part) {
      tracker.feed(part.literal);
      literals[literals.length - 1] += part.literal;
      continue;
    }
    const context = tracker.context();
    if (context !== 'plain' && context !== 'single' && context !== 'double') {
      const at = positions[names.length] ?? 0;
      throw new AgentError(
        ErrorCodes.TEMPLATE_INVALID,
        `placeholder {${part.name}} at ${describePosition(template.source, at)} ${context}`,
      );
    }
    names.push(part.name);
    contexts.push(context);
    literals.push('');
    tracker.value();
  }
  if (names.length > 0) {
    const problem = tracker.unterminated();
    if (problem) {
      throw new AgentError(
        ErrorCodes.TEMPLATE_INVALID,
        `command ${problem}, so where its placeholders land cannot be told; balance its quotes`,
      );
    }
  }
  plan = Object.freeze({ literals: Object.freeze(literals), names: Object.freeze(names), contexts: Object.freeze(contexts) });
  plans.set(template, plan);
  return plan;
}

/** How {@link renderCommand} fills each placeholder. */
export interface RenderOptions {
  /** The statement's label (`access[0]`), for messages. */
  readonly label: string;
  /** Show each identifier as this text instead of its quoted value (dry runs). */
  readonly masked?: string;
  /** Secret keys, only to say in a message that they are not placeholders here. */
  readonly secretKeys?: ReadonlySet<string> | readonly string[];
}

/**
 * Render a command line: each `{name}` is the request's identifier `name`, quoted for its context.
 * Throws AgentError TEMPLATE_MISSING_VARIABLE (no such identifier), IDENTIFIER_INVALID (CR, LF,
 * NUL, lone surrogate) or TEMPLATE_INVALID (see {@link shellPlanOf}). Messages name, never quote.
 */
export function renderCommand(template: Template, identifiers: Readonly<Record<string, string>>, opts: RenderOptions): string {
  const plan = shellPlanOf(template);
  let out = plan.literals[0];
  for (let i = 0; i < plan.names.length; i++) {
    const name = plan.names[i];
    const value = Object.hasOwn(identifiers, name) ? identifiers[name] : undefined;
    if (value === undefined || value === null) {
      const secretKeys = opts.secretKeys === undefined ? [] : [...opts.secretKeys];
      const hint = secretKeys.includes(name) ? ` (secret keys are not placeholders in SSH commands; only identifiers are)` : '';
      throw new AgentError(
        ErrorCodes.TEMPLATE_MISSING_VARIABLE,
        `placeholder {${name}} in ${opts.label} has no value: pass ${name} as an identifier of the request${hint}`,
      );
    }
    const text = String(value);
    const problem = identifierProblem(text);
    if (problem) throw new AgentError(ErrorCodes.IDENTIFIER_INVALID, `identifier '${name}' ${problem} (${opts.label})`);
    out += opts.masked ?? quoteFor(text, plan.contexts[i]);
    out += plan.literals[i + 1];
  }
  return out;
}
