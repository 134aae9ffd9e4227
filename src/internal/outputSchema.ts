/**
 * The JSON Schema of a structured output: an Effect Schema's JSON Schema with
 * an object at its root (any other value is wrapped in `{ "value": … }`), its
 * strict form for the backends that constrain decoding to it (every property
 * required, optional ones nullable, `additionalProperties: false`, keywords
 * they refuse dropped), and the way back from the JSON a backend sent to the
 * value the Schema decodes.
 */
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type { ResponseFormat } from "../Llm.js"
import type { JsonObject } from "../Message.js"
import { isObject, type Json } from "./json.js"
import { walk, withItems } from "./jsonSchema.js"
import { jsonSchemaOf } from "./schemaJson.js"

/**
 * The property a value that is not an object is wrapped in, for the backends
 * that take only an object schema at the root.
 *
 * @internal
 */
export const wrapperKey = "value"

/** Names OpenAI's `json_schema.name` and Anthropic's tool names accept. */
const namePattern = /^[a-zA-Z0-9_-]{1,64}$/

/**
 * Why a response format cannot be sent, or undefined.
 *
 * @internal
 */
export const responseFormatProblem = (format: ResponseFormat): string | undefined => {
  if (!namePattern.test(format.name)) {
    return `the response format's name ${
      JSON.stringify(format.name)
    } is not a valid name (letters, digits, _ and -, at most 64)`
  }
  if (!isObject(format.schema) || format.schema.type !== "object") {
    return "the response format's schema must be a JSON Schema with \"type\": \"object\" at its root"
  }
  return undefined
}

/** Whether a JSON Schema is a plain object schema at its root (no combinator, reference or constant there). */
const isObjectRoot = (schema: JsonObject): boolean =>
  schema.type === "object" &&
  ["anyOf", "oneOf", "allOf", "$ref", "enum", "const", "not", "if"].every((key) => schema[key] === undefined)

/** The local definition `node` refers to (`#/$defs/…`, `#/definitions/…`), or `node`; `undefined` for a reference that does not resolve. */
const resolve = (node: unknown, root: Json, depth = 0): Json | undefined => {
  if (!isObject(node)) return undefined
  const ref = node.$ref
  if (typeof ref !== "string") return node
  if (depth > 32) return undefined
  const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref)
  const defs = match === null ? undefined : root[match[1]!]
  const target = isObject(defs) ? defs[match![2]!.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined
  return resolve(target, root, depth + 1)
}

/** Whether a schema admits `null` (an unconstrained schema does). */
const acceptsNull = (raw: unknown, root: Json, depth = 0): boolean => {
  const node = resolve(raw, root)
  if (node === undefined || depth > 32) return false
  const type = node.type
  if (type === "null" || (Array.isArray(type) && type.includes("null"))) return true
  if (node.const === null) return true
  if (Array.isArray(node.enum)) return node.enum.includes(null)
  for (const key of ["anyOf", "oneOf"] as const) {
    const branches = node[key]
    if (Array.isArray(branches) && branches.some((branch) => acceptsNull(branch, root, depth + 1))) return true
  }
  if (Array.isArray(node.allOf)) return node.allOf.every((branch) => acceptsNull(branch, root, depth + 1))
  return type === undefined && node.properties === undefined && node.items === undefined &&
    node.anyOf === undefined && node.oneOf === undefined && node.const === undefined
}

/** Whether an object value can be of an object schema branch: its keys are the branch's, its constants match. */
const fits = (value: Json, branch: Json): boolean => {
  const properties = branch.properties
  if (!isObject(properties)) return branch.type === "object"
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(properties, key) && branch.additionalProperties === false) return false
  }
  for (const [key, sub] of Object.entries(properties)) {
    if (!isObject(sub) || !Object.hasOwn(value, key)) continue
    if (Object.hasOwn(sub, "const") && sub.const !== value[key]) return false
    if (Array.isArray(sub.enum) && !sub.enum.includes(value[key])) return false
  }
  return true
}

/**
 * `value` with the nulls a strict backend sends for absent optional
 * properties (those the schema does not let be null) removed, copying only
 * what changes.
 */
const dropNulls = (value: unknown, raw: unknown, root: Json, depth: number): unknown => {
  if (typeof value !== "object" || value === null || depth > 64) return value
  const node = resolve(raw, root)
  if (node === undefined) return value
  if (Array.isArray(value)) {
    const prefix = Array.isArray(node.prefixItems) ? node.prefixItems : []
    let out: Array<unknown> | undefined
    for (let i = 0; i < value.length; i++) {
      const sub = i < prefix.length ? prefix[i] : node.items
      if (!isObject(sub)) continue
      const restored = dropNulls(value[i], sub, root, depth + 1)
      if (restored !== value[i]) (out ??= [...value])[i] = restored
    }
    return out ?? value
  }
  const object = value as Json
  for (const key of ["anyOf", "oneOf"] as const) {
    const branches = node[key]
    if (!Array.isArray(branches)) continue
    for (const branch of branches) {
      const resolved = resolve(branch, root)
      if (resolved !== undefined && !Array.isArray(resolved.type) && fits(object, resolved)) {
        return dropNulls(object, resolved, root, depth + 1)
      }
    }
    return value
  }
  const properties = node.properties
  if (!isObject(properties)) return value
  const required = new Set(Array.isArray(node.required) ? node.required : [])
  let out: Json | undefined
  for (const [key, child] of Object.entries(object)) {
    const sub = properties[key]
    if (sub === undefined) continue
    if (child === null && !required.has(key) && !acceptsNull(sub, root)) {
      out ??= { ...object }
      delete out[key]
      continue
    }
    const restored = dropNulls(child, sub, root, depth + 1)
    if (restored !== child) (out ??= { ...object })[key] = restored
  }
  return out ?? value
}

/** Whether some object of the schema has an optional property that does not admit null (so strict mode sends nulls for it). */
const hasOptional = (schema: JsonObject): boolean => {
  let found = false
  walk(schema, (node) => {
    if (isObject(node.properties)) {
      const required = new Set(Array.isArray(node.required) ? node.required : [])
      for (const [key, sub] of Object.entries(node.properties)) {
        if (!required.has(key) && !acceptsNull(sub, schema)) found = true
      }
    }
    return node
  })
  return found
}

/**
 * A Schema made ready to be asked for: the response format sent, and how
 * the JSON received becomes the Schema's encoded value.
 *
 * @internal
 */
export interface OutputSchema<A, I> {
  readonly schema: Schema.Schema<A, I, never>
  readonly format: ResponseFormat
  /** Whether the value is wrapped in `{ "value": … }` on the wire. */
  readonly wrapped: boolean
  /** The JSON received as the Schema's encoded value: unwrapped, with a strict backend's nulls for absent optional properties removed. */
  readonly read: (json: unknown) => unknown
  /**
   * Whether `read` may drop nulls (some optional property does not admit
   * null): two different values read may then be equal.
   */
  readonly restores: boolean
  /** The same for one element of an array value (the `elements` option). */
  readonly readElement: (json: unknown) => unknown
}

/** The response format's name: the one given, else the Schema's identifier when it is a valid name, else `output`. */
const nameOf = (schema: JsonObject, given: string | undefined, identifier: unknown): string => {
  if (given !== undefined) return given
  for (const candidate of [identifier, schema.title]) {
    if (typeof candidate === "string" && namePattern.test(candidate)) return candidate
  }
  return "output"
}

/**
 * Prepares a Schema for structured output, or says why it cannot be (its
 * JSON Schema cannot be made, the name given is invalid).
 *
 * @internal
 */
export const prepare = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options: { readonly name?: string | undefined; readonly description?: string | undefined } = {}
): OutputSchema<A, I> | string => {
  let json: JsonObject
  try {
    json = walk(jsonSchemaOf(schema), withItems) as JsonObject
  } catch (cause) {
    return `the Schema has no JSON Schema: ${cause instanceof Error ? cause.message : String(cause)}`
  }
  const identifier = Option.getOrUndefined(
    Option.orElse(
      SchemaAST.getIdentifierAnnotation(schema.ast),
      () => SchemaAST.getIdentifierAnnotation(SchemaAST.typeAST(schema.ast))
    )
  )
  const name = nameOf(json, options.name, identifier)
  const wrapped = !isObjectRoot(json)
  let sent: JsonObject = json
  if (wrapped) {
    const { $defs, ...inner } = json
    sent = {
      type: "object",
      properties: { [wrapperKey]: inner },
      required: [wrapperKey],
      additionalProperties: false,
      ...($defs === undefined ? {} : { $defs })
    }
  }
  const format: ResponseFormat = {
    name,
    schema: sent,
    ...(options.description === undefined ? {} : { description: options.description })
  }
  const problem = responseFormatProblem(format)
  if (problem !== undefined) return problem
  const restore = hasOptional(sent)
  const read = (value: unknown): unknown => {
    const restored = restore ? dropNulls(value, sent, sent, 0) : value
    return wrapped ? (isObject(restored) ? restored[wrapperKey] : undefined) : restored
  }
  const array = wrapped ? (sent.properties as Json)[wrapperKey] : sent
  const items = isObject(array) ? resolve(array, sent)?.items : undefined
  const readElement = (value: unknown): unknown => restore && isObject(items) ? dropNulls(value, items, sent, 0) : value
  return { schema, format, wrapped, read, readElement, restores: restore }
}

/** Keywords a strict backend refuses (OpenAI's strict mode, Anthropic's structured output): dropped from what is sent, still checked by the decode. */
const refusedKeywords = [
  "format",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "default",
  "examples",
  "contentEncoding",
  "contentMediaType",
  "$schema",
  "$id",
  "$comment"
] as const

/** Keywords a strict backend cannot take at all: a schema with one of them is sent as it is, without strict mode. */
const inexpressibleKeywords = [
  "allOf",
  "not",
  "if",
  "then",
  "else",
  "dependentSchemas",
  "dependentRequired",
  "dependencies",
  "patternProperties",
  "unevaluatedProperties",
  "unevaluatedItems",
  "propertyNames",
  "prefixItems",
  "contains"
] as const

/** Keywords that say what a schema admits: a node with none of them admits anything, which strict mode cannot say. */
const constraining = ["type", "anyOf", "oneOf", "$ref", "enum", "const", "properties", "items"] as const

/**
 * The schema in the form strict backends take, or undefined when it has no
 * such form (free-form keys, `allOf`, an unconstrained value): every object
 * closed (`additionalProperties: false`), `oneOf` read as `anyOf`, the
 * keywords they refuse dropped; with `allRequired` (OpenAI's strict mode)
 * every property required, the optional ones made nullable (the decode
 * reads their null back as absent).
 *
 * @internal
 */
export const constrained = (
  schema: JsonObject,
  options: { readonly allRequired: boolean }
): JsonObject | undefined => {
  let expressible = true
  const out = walk(schema, (node) => {
    const copy: Json = { ...node }
    for (const key of refusedKeywords) delete copy[key]
    if (inexpressibleKeywords.some((key) => copy[key] !== undefined)) expressible = false
    if (Array.isArray(copy.oneOf)) {
      copy.anyOf = copy.oneOf
      delete copy.oneOf
    }
    if (constraining.every((key) => copy[key] === undefined)) expressible = false
    const isObjectNode = copy.type === "object" || copy.properties !== undefined
    if (isObjectNode) {
      if (copy.additionalProperties !== undefined && copy.additionalProperties !== false) expressible = false
      const properties: Json = isObject(copy.properties) ? { ...copy.properties } : {}
      copy.additionalProperties = false
      if (options.allRequired) {
        const required = new Set(Array.isArray(copy.required) ? copy.required : [])
        for (const [key, sub] of Object.entries(properties)) {
          if (!required.has(key) && !acceptsNull(sub, schema)) properties[key] = { anyOf: [sub, { type: "null" }] }
        }
        copy.required = Object.keys(properties)
      }
      copy.properties = properties
    }
    return copy
  }) as JsonObject
  return expressible ? out : undefined
}
