/**
 * The JSON Schema of an Effect Schema, as the backends want it: from
 * `JSONSchema.make`, without `$schema`, its root inlined when it is a `$ref`.
 * Tool parameters and structured output both derive theirs here.
 */
import * as JSONSchema from "effect/JSONSchema"
import type * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type { JsonObject } from "../Message.js"
import { isObject } from "./json.js"

/** `Schema.Struct({})`: its JSON Schema says "an object or an array", which no provider takes for an object. */
const isEmptyStruct = (ast: SchemaAST.AST): boolean =>
  SchemaAST.isTypeLiteral(ast) && ast.propertySignatures.length === 0 && ast.indexSignatures.length === 0

/**
 * A schema whose root is a `$ref` into its `$defs` (what a `Schema.Class` or
 * an `identifier` annotation gives) with that definition in place of the
 * reference: providers want the root to say `"type": "object"`. The other
 * definitions stay, and so does the inlined one if something still refers to it.
 */
const inlineRoot = (schema: JsonObject): JsonObject => {
  const { $defs: defs, $ref: ref, ...siblings } = schema
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/") || !isObject(defs)) return schema
  const name = ref.slice("#/$defs/".length).replace(/~1/g, "/").replace(/~0/g, "~")
  const root = Object.hasOwn(defs, name) ? defs[name] : undefined
  if (!isObject(root)) return schema
  const { [name]: _, ...others } = defs
  const kept = JSON.stringify([root, others]).includes(JSON.stringify(ref)) ? defs : others
  return { ...siblings, ...root, ...(Object.keys(kept).length === 0 ? {} : { $defs: kept }) } as JsonObject
}

/**
 * The JSON Schema of a Schema's encoded side, as providers want it: no
 * `$schema`, and the root itself rather than a `$ref` to it. Throws what
 * `JSONSchema.make` throws for a Schema it cannot express.
 *
 * @internal
 */
export const jsonSchemaOf = <A, I, R>(schema: Schema.Schema<A, I, R>): JsonObject => {
  if (isEmptyStruct(SchemaAST.encodedAST(schema.ast))) return { type: "object", properties: {} }
  const { $schema: _, ...rest } = JSONSchema.make(schema) as unknown as JsonObject
  return inlineRoot(rest)
}
