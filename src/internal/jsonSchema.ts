/**
 * JSON Schemas written elsewhere (an MCP server's tool, a hand-written tool):
 * upgraded to draft 2020-12, reshaped into the parameters every backend
 * accepts, and compiled by Ajv into the check of a call's arguments.
 */
import type { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import type { JsonObject } from "../Message.js"
import { isObject, type Json } from "./json.js"
import { fitName } from "./names.js"

/** Keywords whose value maps names to subschemas. */
const schemaMaps = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"] as const
/** Keywords whose value is a list of subschemas. */
const schemaLists = ["allOf", "anyOf", "oneOf", "prefixItems"] as const
/** Keywords whose value is one subschema (`items` may also be a draft-07 list). */
const schemaSingles = [
  "additionalProperties",
  "unevaluatedProperties",
  "items",
  "additionalItems",
  "unevaluatedItems",
  "contains",
  "propertyNames",
  "not",
  "if",
  "then",
  "else"
] as const

/**
 * A copy of `node` with `visit` applied to it and to every subschema, innermost first.
 *
 * @internal
 */
export const walk = (node: unknown, visit: (schema: Json) => Json): unknown => {
  if (!isObject(node)) return node
  const out: Json = { ...node }
  for (const key of schemaMaps) {
    const map = out[key]
    if (isObject(map)) out[key] = Object.fromEntries(Object.entries(map).map(([name, sub]) => [name, walk(sub, visit)]))
  }
  for (const key of schemaLists) {
    const list = out[key]
    if (Array.isArray(list)) out[key] = list.map((sub) => walk(sub, visit))
  }
  for (const key of schemaSingles) {
    const sub = out[key]
    if (Array.isArray(sub)) out[key] = sub.map((item) => walk(item, visit))
    else if (sub !== undefined) out[key] = walk(sub, visit)
  }
  // draft-07 `dependencies`: each value is a subschema or a list of property names
  if (isObject(out.dependencies)) {
    out.dependencies = Object.fromEntries(
      Object.entries(out.dependencies).map(([name, sub]) => [name, Array.isArray(sub) ? sub : walk(sub, visit)])
    )
  }
  return visit(out)
}

/** One schema node in draft 2020-12 terms. */
const upgradeNode = (node: Json): Json => {
  const { $id: _id, $schema: _schema, ...out } = node
  if (typeof out.id === "string") delete out.id
  for (const [exclusive, bound] of [["exclusiveMinimum", "minimum"], ["exclusiveMaximum", "maximum"]] as const) {
    if (out[exclusive] === true && typeof out[bound] === "number") {
      out[exclusive] = out[bound]
      delete out[bound]
    } else if (typeof out[exclusive] === "boolean") {
      delete out[exclusive]
    }
  }
  if (Array.isArray(out.items)) {
    out.prefixItems = out.items
    if (out.additionalItems === undefined) delete out.items
    else out.items = out.additionalItems
  }
  delete out.additionalItems
  return out
}

/**
 * The schema in draft 2020-12 terms, meaning kept: no `$schema` or `$id`
 * (so the default dialect applies and two tools' `$id`s cannot clash),
 * draft-04's `id` and boolean `exclusiveMinimum`/`exclusiveMaximum`,
 * draft-07's tuple `items` and `additionalItems` rewritten.
 *
 * @internal
 */
export const upgrade = (schema: JsonObject): JsonObject => walk(schema, upgradeNode) as JsonObject

const isArrayType = (type: unknown): boolean => type === "array" || (Array.isArray(type) && type.includes("array"))

/**
 * OpenAI refuses an array schema without `items`.
 *
 * @internal
 */
export const withItems = (node: Json): Json =>
  isArrayType(node.type) && node.items === undefined && node.prefixItems === undefined ? { ...node, items: {} } : node

/** Root keywords OpenAI refuses ("must have type 'object' and not have 'oneOf'/'anyOf'/'allOf'/'enum'/'not' at the top level"); Anthropic refuses the first three. */
const rootRefused = ["allOf", "anyOf", "oneOf", "not", "enum", "const", "if", "then", "else"] as const

/** Property keys Anthropic accepts at the top level of `input_schema`. */
const propertyKeyChars = "a-zA-Z0-9_.-"
const propertyKey = /^[a-zA-Z0-9_.-]{1,64}$/

/** A root branch, or the local definition it refers to. */
const resolveLocal = (root: Json, branch: unknown): Json | undefined => {
  if (!isObject(branch)) return undefined
  const ref = branch.$ref
  if (typeof ref !== "string") return branch
  const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref)
  const defs = match === null ? undefined : root[match[1]!]
  const target = isObject(defs) ? defs[match![2]!.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined
  return isObject(target) ? target : undefined
}

/**
 * What the model is given of a tool's parameters, and how its arguments
 * map back to the schema's own property names.
 *
 * @internal
 */
export interface ModelView {
  readonly parameters: JsonObject
  /** The arguments with the original names of renamed top-level properties. */
  readonly restore: (args: JsonObject) => JsonObject
}

/**
 * The parameters as every backend accepts them, from an upgraded schema:
 * an object schema at the root with no combinator or constant there (a root
 * `allOf` is merged in; a root `anyOf`/`oneOf` offers the union of its
 * branches' properties, required only what the root requires), every array
 * with `items`, and top-level property keys Anthropic accepts (others are
 * renamed, and `restore` maps arguments back). The arguments are still
 * checked against the schema itself, so nothing dropped here goes unchecked.
 *
 * @internal
 */
export const forModels = (schema: JsonObject): ModelView => {
  const root = walk(schema, withItems) as Json
  const properties: Json = isObject(root.properties) ? { ...root.properties } : {}
  const required = new Set(Array.isArray(root.required) ? root.required.filter((k) => typeof k === "string") : [])
  const hadRequired = Array.isArray(root.required)
  for (const key of ["allOf", "anyOf", "oneOf"] as const) {
    const branches = root[key]
    if (!Array.isArray(branches)) continue
    for (const raw of branches) {
      const branch = resolveLocal(root, raw)
      if (branch === undefined) continue
      if (isObject(branch.properties)) {
        for (const [name, sub] of Object.entries(branch.properties)) {
          if (!Object.hasOwn(properties, name)) properties[name] = sub
        }
      }
      if (key === "allOf" && Array.isArray(branch.required)) {
        for (const name of branch.required) if (typeof name === "string") required.add(name)
      }
    }
  }
  const out: Json = { ...root }
  for (const key of rootRefused) delete out[key]
  out.type = "object"

  const renamed = new Map<string, string>()
  const taken = new Set(Object.keys(properties).filter((key) => propertyKey.test(key)))
  const fitted: Json = {}
  for (const [key, sub] of Object.entries(properties)) {
    if (propertyKey.test(key)) {
      fitted[key] = sub
      continue
    }
    const safe = fitName(key, { allowed: propertyKeyChars, max: 64, taken })
    taken.add(safe)
    renamed.set(key, safe)
    fitted[safe] = sub
  }
  out.properties = fitted
  if (hadRequired || required.size > 0) out.required = [...required].map((key) => renamed.get(key) ?? key)

  const back = new Map([...renamed].map(([original, safe]) => [safe, original]))
  return {
    parameters: out,
    restore: back.size === 0 ?
      (args) => args :
      (args) => Object.fromEntries(Object.entries(args).map(([key, value]) => [back.get(key) ?? key, value]))
  }
}

/**
 * Checks a value against a compiled schema: undefined when it is valid, else
 * what is wrong with it.
 *
 * @internal
 */
export type Validate = (value: unknown) => string | undefined

/** How much of Ajv's explanation a tool result carries. */
const maxProblemLength = 1000

/** Ajv's draft 2020-12 validator (a CommonJS module: Node's `default` is its `module.exports`, which carries `default` too). */
type Ajv = Ajv2020

let instance: Promise<Ajv> | undefined

/** One Ajv for draft 2020-12 with the standard formats, loaded on first use (not when the library is imported). */
const ajv = (): Promise<Ajv> =>
  instance ??= Promise.all([import("ajv/dist/2020.js"), import("ajv-formats")]).then(([core, formats]) => {
    const created = new core.default.default({ allErrors: true, strict: false, logger: false })
    formats.default.default(created)
    return created
  })

/**
 * Compiles an upgraded schema into the check of a value, or fails with why
 * it cannot be compiled (a schema that is not valid draft 2020-12, a
 * pattern JavaScript cannot read). The schema is not kept by Ajv once
 * compiled, so refreshed tool lists do not accumulate.
 *
 * @internal
 */
export const compile = (schema: JsonObject): Effect.Effect<Validate, string> =>
  Effect.flatMap(Effect.promise(ajv), (validator) =>
    Effect.try({
      try: (): Validate => {
        const check = validator.compile(schema)
        validator.removeSchema(schema)
        return (value) => {
          if (check(value)) return undefined
          const text = validator.errorsText(check.errors, { dataVar: "arguments" })
          return text.length > maxProblemLength ? `${text.slice(0, maxProblemLength)}…` : text
        }
      },
      catch: (cause) => (cause instanceof Error ? cause.message : String(cause))
    }))
