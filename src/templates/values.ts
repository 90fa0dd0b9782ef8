import { AgentError, ErrorCodes } from '../errors.js';
import type { Plan } from './plan.js';

/**
 * The values a template is filled with. A name is looked up in `secrets` first, then in
 * `identifiers`. Secrets are trusted configuration and go in as they are; identifiers come from
 * outside and are encoded for where they land, so they can never change a request's structure.
 */
export interface TemplateValues {
  /** Data subject identifiers (e.g. email, user_id); untrusted. */
  readonly identifiers: Readonly<Record<string, string>>;
  /** The connection's secret, a flat key → value object; trusted. */
  readonly secrets: Readonly<Record<string, string>>;
}

/** Where a template is rendered, for messages: "the URL", "a header", "the body". */
export type TemplateSite = 'the URL' | 'a header' | 'the body';

/** Encodes one identifier value; `index` is the placeholder's index in the plan. */
export type IdentifierEncoder = (value: string, name: string, index: number) => string;

const hasOwn = Object.hasOwn;

/** The TEMPLATE_MISSING_VARIABLE error for `name` (a name, never a value). */
export function missingVariable(name: string, site: TemplateSite): AgentError {
  return new AgentError(
    ErrorCodes.TEMPLATE_MISSING_VARIABLE,
    `template variable '${name}' used in ${site} has no value: pass it as an identifier or add the key to the connection's secret`,
  );
}

/** The IDENTIFIER_INVALID error for `name`; `why` must not contain the value. */
export function invalidIdentifier(name: string, why: string): AgentError {
  return new AgentError(ErrorCodes.IDENTIFIER_INVALID, `identifier '${name}' ${why}`);
}

/**
 * Fill `plan`: secrets as they are, identifiers through `encode` (as they are when null).
 * Own properties only, so a name like `constructor` never resolves to Object.prototype.
 */
export function fill(plan: Plan, values: TemplateValues, site: TemplateSite, encode: IdentifierEncoder | null): string {
  const { literals, names } = plan;
  const secrets = values.secrets;
  const identifiers = values.identifiers;
  let out = literals[0];
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    let v: string | undefined;
    if (hasOwn(secrets, name) && (v = secrets[name]) != null) out += v;
    else if (hasOwn(identifiers, name) && (v = identifiers[name]) != null) {
      out += encode === null ? String(v) : encode(String(v), name, i);
    } else throw missingVariable(name, site);
    out += literals[i + 1];
  }
  return out;
}
