import type { Template } from './parse.js';

/** Where a placeholder sits in a URL template: in the path (segment rules apply), after it, or in the scheme or authority. */
export const URL_BEFORE_QUERY = 0;
export const URL_QUERY_OR_FRAGMENT = 1;
/** In the scheme, user info, host or port: only a secret may go there (it decides where the request goes). */
export const URL_AUTHORITY = 2;

/** Where a placeholder sits in a JSON skeleton. */
export const JSON_VALUE = 0; // outside any string literal
export const JSON_STRING = 1; // inside "..."
export const JSON_ESCAPE = 2; // inside "..." right after a lone backslash

/**
 * Everything rendering needs, precomputed once per template: literals interleaved with names
 * (`literals[0] names[0] literals[1] … names[n-1] literals[n]`) and each placeholder's context.
 */
export interface Plan {
  readonly literals: readonly string[];
  readonly names: readonly string[];
  /** URL_* per placeholder. */
  readonly url: readonly number[];
  /** JSON_* per placeholder. */
  readonly json: readonly number[];
  /** Index of the first placeholder in JSON_ESCAPE context, or -1. */
  readonly jsonEscapeAt: number;
}

/** Where parseTemplate keeps a template's plan: a property load per render, not a WeakMap lookup. */
const PLAN = Symbol('plan');
/** Plans of templates not made by parseTemplate (object literals). */
const plans = new WeakMap<Template, Plan>();

/** Attach `t`'s plan to it (before it is frozen). */
export function attachPlan(t: Template): void {
  Object.defineProperty(t, PLAN, { value: makePlan(t) });
}

/** The plan of `t`: the one attached at parse time, else built on first use and cached for the template's lifetime. */
export function planOf(t: Template): Plan {
  const attached = (t as { readonly [PLAN]?: Plan })[PLAN];
  if (attached !== undefined) return attached;
  let plan = plans.get(t);
  if (plan === undefined) {
    plan = makePlan(t);
    plans.set(t, plan);
  }
  return plan;
}

function makePlan(t: Template): Plan {
  const literals: string[] = [''];
  const names: string[] = [];
  for (const part of t.parts) {
    if ('literal' in part) literals[literals.length - 1] += part.literal;
    else {
      names.push(part.name);
      literals.push('');
    }
  }
  // Plain arrays: a typed array is two heap objects (view and buffer), and a config holds a plan per template.
  const url: number[] = [];
  const json: number[] = [];
  const urlScan = makeUrlScanner();
  const jsonScan = makeJsonScanner();
  let jsonEscapeAt = -1;
  for (let i = 0; i < names.length; i++) {
    url[i] = urlScan(literals[i]);
    json[i] = jsonScan(literals[i]);
    if (json[i] === JSON_ESCAPE && jsonEscapeAt < 0) jsonEscapeAt = i;
  }
  return { literals, names, url, json, jsonEscapeAt };
}

/**
 * Feed the literals in order; each call returns the context after that literal. A placeholder
 * never moves the state: identifier values are percent-encoded, so they hold no `/?#`.
 */
function makeUrlScanner(): (literal: string) => number {
  let state: 'start' | 'authority' | 'path' | 'query' | 'fragment' = 'start';
  return (literal) => {
    for (let k = 0; k < literal.length; k++) {
      const c = literal[k];
      if (c === '#') state = 'fragment';
      else if (state === 'fragment') continue;
      else if (c === '?') state = 'query';
      else if (state === 'query') continue;
      else if (state === 'start' && literal.startsWith('://', k)) {
        state = 'authority';
        k += 2;
      } else if (c === '/' || c === '\\') state = 'path';
    }
    if (state === 'query' || state === 'fragment') return URL_QUERY_OR_FRAGMENT;
    return state === 'start' || state === 'authority' ? URL_AUTHORITY : URL_BEFORE_QUERY;
  };
}

/**
 * A tiny JSON string-state scanner over the literal skeleton. Placeholders never move the state:
 * identifiers are inserted as escaped string content or as a complete string literal.
 */
function makeJsonScanner(): (literal: string) => number {
  let inString = false;
  let escaped = false;
  return (literal) => {
    for (let k = 0; k < literal.length; k++) {
      const c = literal.charCodeAt(k);
      if (!inString) {
        if (c === 0x22 /* " */) inString = true;
      } else if (escaped) escaped = false;
      else if (c === 0x5c /* \ */) escaped = true;
      else if (c === 0x22) inString = false;
    }
    if (!inString) return JSON_VALUE;
    if (!escaped) return JSON_STRING;
    escaped = false; // the placeholder's first character completes the escape
    return JSON_ESCAPE;
  };
}
