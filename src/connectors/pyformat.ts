/**
 * PEP 249 "pyformat" placeholders, as DataGrail's database connectors write them:
 * `%(name)s` is a bound parameter, `%%` a literal percent. Each placeholder becomes a driver
 * parameter (`$1`, `$2`, … for Postgres and Redshift; `?` for MySQL), so an identifier value is
 * never part of the SQL text.
 */
import { NAME_PATTERN } from '../names.js';
import { AgentError, ErrorCodes } from '../errors.js';

/** A statement with its placeholders replaced for one driver, and the parameter names in order. */
export interface BoundStatement {
  readonly text: string;
  /** The identifier name of each parameter, in the driver's order (a name used twice appears twice for `?`). */
  readonly names: readonly string[];
}

/** How a driver writes its parameters. */
export type ParameterStyle = 'dollar' | 'question';

const NAME = NAME_PATTERN;

/**
 * Why `sql` has no valid pyformat placeholders, or undefined. Problems: `%(` without `)s`, a name
 * that is not identifier-shaped, another placeholder style (`%s`, `%d`, `%(name)d`), a lone `%`.
 */
export function pyformatProblem(sql: string): string | undefined {
  try {
    bindPyformat(sql, 'dollar');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Replace `%(name)s` by the driver's parameter marker and `%%` by `%`. For 'dollar' a name used
 * twice reuses its number. Throws AgentError(TEMPLATE_INVALID) saying what to write instead.
 */
export function bindPyformat(sql: string, style: ParameterStyle): BoundStatement {
  let out = '';
  const names: string[] = [];
  const numbers = new Map<string, number>();
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c !== '%') {
      out += c;
      continue;
    }
    const next = sql[i + 1];
    if (next === '%') {
      out += '%';
      i++;
      continue;
    }
    if (next !== '(') {
      throw invalid(
        next === 's' || next === 'd'
          ? `positional placeholder '%${next}' at position ${i + 1}: use a named one such as %(email)s`
          : `lone '%' at position ${i + 1}: write '%%' for a literal percent sign`,
      );
    }
    const close = sql.indexOf(')', i + 2);
    if (close < 0) throw invalid(`unbalanced '%(' at position ${i + 1}: close it as %(name)s`);
    const name = sql.slice(i + 2, close);
    if (!NAME.test(name)) throw invalid(`'%(${name.slice(0, 32)})' at position ${i + 1} is not an identifier name (letters, digits, '_')`);
    if (sql[close + 1] !== 's') throw invalid(`'%(${name})${sql[close + 1] ?? ''}' at position ${i + 1}: only %(name)s is supported`);
    if (style === 'dollar') {
      let n = numbers.get(name);
      if (n === undefined) {
        names.push(name);
        numbers.set(name, (n = names.length));
      }
      out += `$${n}`;
    } else {
      names.push(name);
      out += '?';
    }
    i = close + 1;
  }
  return { text: out, names };
}

function invalid(message: string): AgentError {
  return new AgentError(ErrorCodes.TEMPLATE_INVALID, message);
}

/**
 * The parameter values of a bound statement, looked up in the request's identifiers. Throws
 * TEMPLATE_MISSING_VARIABLE naming a placeholder the request does not carry.
 */
export function parameterValues(bound: BoundStatement, identifiers: Readonly<Record<string, string>>): string[] {
  return bound.names.map((name) => {
    if (!Object.hasOwn(identifiers, name)) {
      throw new AgentError(ErrorCodes.TEMPLATE_MISSING_VARIABLE, `placeholder %(${name})s has no value: pass ${name} as an identifier of the request`);
    }
    return identifiers[name]!;
  });
}
