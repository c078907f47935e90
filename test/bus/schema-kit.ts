/**
 * Hand-made Standard Schemas for the tests (no schema library): an object
 * schema over primitive fields, as zod's `z.object({ total: z.number() })`
 * would be, optionally asynchronous, plus one that transforms (string → Date).
 */
import type { StandardSchemaV1, StandardSchemaV1Issue } from '../../src/index.ts';

type Primitive = 'number' | 'string' | 'boolean';
type FieldType<F extends Primitive> = F extends 'number' ? number : F extends 'string' ? string : boolean;
type Shape = Readonly<Record<string, Primitive>>;
export type ObjectOf<S extends Shape> = { [K in keyof S]: FieldType<S[K]> };

function issuesOf(shape: Shape, value: unknown): StandardSchemaV1Issue[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [{ message: `Expected an object, received ${value === null ? 'null' : typeof value}` }];
  }
  const record = value as Record<string, unknown>;
  const issues: StandardSchemaV1Issue[] = [];
  for (const [key, type] of Object.entries(shape)) {
    if (typeof record[key] !== type) {
      issues.push({ message: `Expected ${type}, received ${typeof record[key]}`, path: [{ key }] });
    }
  }
  return issues;
}

/** `{ ...fields }` of primitive types; `async: true` answers through a Promise, as async refinements do. */
export function objectSchema<const S extends Shape>(
  shape: S,
  options: { readonly async?: boolean } = {},
): StandardSchemaV1<ObjectOf<S>> {
  const validate = (value: unknown) => {
    const issues = issuesOf(shape, value);
    return issues.length > 0 ? { issues } : { value: value as ObjectOf<S> };
  };
  return {
    '~standard': {
      version: 1,
      vendor: 'test-kit',
      validate: options.async === true ? (value) => Promise.resolve(validate(value)) : validate,
    },
  };
}

/** `{ at: string }` in, `{ at: Date }` out: a schema whose output differs from its input. */
export const datedSchema: StandardSchemaV1<{ at: string }, { at: Date }> = {
  '~standard': {
    version: 1,
    vendor: 'test-kit',
    validate(value) {
      const at = (value as { at?: unknown } | null)?.at;
      if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) {
        return { issues: [{ message: 'Expected an ISO date string', path: ['at'] }] };
      }
      return { value: { at: new Date(at) } };
    },
  },
};
