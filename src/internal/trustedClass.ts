/**
 * Instances of a Schema class built from fields the caller made to the
 * class's type (a decoded reply, its usage and metadata), for the hot paths.
 * `new C(fields, true)` copies the fields twice and scans the class's fields
 * for constructor defaults on every call: about 0.5 µs a reply in process,
 * several times that between network reads, when the caches are cold.
 *
 * @internal
 */
import * as Schema from "effect/Schema"
import { CompletionResult, ResponseMetadata } from "../Reply.js"
import { Usage } from "../Usage.js"

/** A Schema class: its prototype, its fields, and its constructor. */
interface SchemaClass<Self, Fields> {
  readonly prototype: Self
  readonly fields: Schema.Struct.Fields
  new(fields: Fields, options?: Schema.MakeOptions): Self
}

/** The constructor default of a class field, if it has one. */
const defaultOf = (field: Schema.Struct.Fields[string]): unknown => {
  if (!Schema.isPropertySignature(field)) return undefined
  const ast = field.ast
  return ast._tag === "PropertySignatureDeclaration" ? ast.defaultValue : ast.to.defaultValue
}

/**
 * A maker of `Class`'s instances: what `new Class(fields, true)` makes (the
 * same prototype and own fields), without its copies. The fields are taken
 * as given, unchecked: only for fields built to the class's type. Throws at
 * once for a class with a constructor default, which `new` would fill in.
 */
export const trusted = <Self, Fields extends object>(Class: SchemaClass<Self, Fields>): (fields: Fields) => Self => {
  for (const name of Object.keys(Class.fields)) {
    if (defaultOf(Class.fields[name]!) !== undefined) {
      throw new Error(`trusted: ${Class.name}.${name} has a constructor default; build it with new`)
    }
  }
  const prototype = Class.prototype
  return (fields) => Object.assign(Object.create(prototype as object) as Self & object, fields)
}

/** A `CompletionResult` of fields built to its type. */
export const completionResult = trusted(CompletionResult)

/** A `ResponseMetadata` of fields built to its type. */
export const responseMetadata = trusted(ResponseMetadata)

/** A `Usage` of counters built to its type. */
export const usage = trusted(Usage)
