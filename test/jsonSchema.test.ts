/**
 * JSON Schemas from outside (MCP servers, hand-written tools): upgraded to
 * draft 2020-12, reshaped into what every backend accepts as tool
 * parameters, and compiled into a validator for the arguments.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { compile, forModels, upgrade } from "../src/internal/jsonSchema.js"

describe("upgrade", () => {
  it("drops $schema and $id everywhere, and draft-04's id keyword", () => {
    expect(upgrade({
      $schema: "http://json-schema.org/draft-07/schema#",
      $id: "https://example.test/echo",
      type: "object",
      properties: { message: { type: "string", id: "message", $schema: "http://json-schema.org/draft-07/schema#" } }
    })).toEqual({ type: "object", properties: { message: { type: "string" } } })
  })

  it("turns draft-04's boolean exclusive bounds into numbers", () => {
    expect(upgrade({
      type: "object",
      properties: {
        low: { type: "number", minimum: 0, exclusiveMinimum: true },
        high: { type: "number", maximum: 10, exclusiveMaximum: true },
        both: { type: "number", minimum: 1, exclusiveMinimum: false, maximum: 2, exclusiveMaximum: false }
      }
    })).toEqual({
      type: "object",
      properties: {
        low: { type: "number", exclusiveMinimum: 0 },
        high: { type: "number", exclusiveMaximum: 10 },
        both: { type: "number", minimum: 1, maximum: 2 }
      }
    })
  })

  it("turns draft-07 tuples (items as a list, additionalItems) into prefixItems and items", () => {
    expect(upgrade({
      type: "object",
      properties: {
        point: { type: "array", items: [{ type: "number" }, { type: "number" }], additionalItems: false },
        pair: { type: "array", items: [{ type: "string" }] },
        list: { type: "array", items: { type: "string" }, additionalItems: { type: "number" } }
      }
    })).toEqual({
      type: "object",
      properties: {
        point: { type: "array", prefixItems: [{ type: "number" }, { type: "number" }], items: false },
        pair: { type: "array", prefixItems: [{ type: "string" }] },
        list: { type: "array", items: { type: "string" } }
      }
    })
  })

  it("reaches every subschema: definitions, $defs, combinators, items, additionalProperties", () => {
    const bounded = { type: "number", minimum: 0, exclusiveMinimum: true }
    const upgraded = { type: "number", exclusiveMinimum: 0 }
    expect(upgrade({
      type: "object",
      definitions: { a: bounded },
      $defs: { b: bounded },
      properties: {
        c: { anyOf: [bounded, { type: "null" }] },
        d: { type: "array", items: bounded },
        e: { type: "object", additionalProperties: bounded },
        f: { not: bounded },
        g: { type: "object", patternProperties: { "^x": bounded } }
      }
    })).toEqual({
      type: "object",
      definitions: { a: upgraded },
      $defs: { b: upgraded },
      properties: {
        c: { anyOf: [upgraded, { type: "null" }] },
        d: { type: "array", items: upgraded },
        e: { type: "object", additionalProperties: upgraded },
        f: { not: upgraded },
        g: { type: "object", patternProperties: { "^x": upgraded } }
      }
    })
  })

  it("leaves property names alone, even ones that look like keywords", () => {
    const schema = {
      type: "object",
      properties: { id: { type: "string" }, $schema: { type: "string" }, items: { type: "array", items: {} } }
    }
    expect(upgrade(schema)).toEqual(schema)
  })
})

describe("forModels", () => {
  it("leaves a plain object schema as it is", () => {
    const schema = {
      type: "object",
      properties: { message: { type: "string", description: "Message to echo" } },
      required: ["message"]
    }
    const view = forModels(schema)
    expect(view.parameters).toEqual(schema)
    expect(view.restore({ message: "hi" })).toEqual({ message: "hi" })
  })

  it("gives an object schema without properties an empty properties map", () => {
    expect(forModels({ type: "object" }).parameters).toEqual({ type: "object", properties: {} })
  })

  it("merges a root allOf of object schemas into the root (properties and required)", () => {
    expect(
      forModels({
        type: "object",
        properties: { a: { type: "string" } },
        required: ["a"],
        allOf: [
          { properties: { b: { type: "number" } }, required: ["b"] },
          { type: "object", properties: { a: { type: "number" }, c: { type: "boolean" } } },
          { not: { required: ["z"] } }
        ]
      }).parameters
    ).toEqual({
      type: "object",
      properties: { a: { type: "string" }, b: { type: "number" }, c: { type: "boolean" } },
      required: ["a", "b"]
    })
  })

  it("turns a root anyOf / oneOf into the union of the branches' properties, required only what the root requires", () => {
    expect(
      forModels({
        type: "object",
        properties: { kind: { type: "string" } },
        required: ["kind"],
        anyOf: [
          { properties: { url: { type: "string" } }, required: ["url"] },
          { properties: { path: { type: "string" } }, required: ["path"] }
        ],
        oneOf: [{ required: ["url"] }, { required: ["path"] }]
      }).parameters
    ).toEqual({
      type: "object",
      properties: { kind: { type: "string" }, url: { type: "string" }, path: { type: "string" } },
      required: ["kind"]
    })
  })

  it("drops what OpenAI refuses at the root: not, enum, const, if/then/else", () => {
    expect(
      forModels({
        type: "object",
        properties: { a: { type: "string" } },
        not: { required: ["b"] },
        enum: [{ a: "x" }],
        const: { a: "x" },
        if: { required: ["a"] },
        then: { required: ["a"] },
        else: { required: ["a"] }
      }).parameters
    ).toEqual({ type: "object", properties: { a: { type: "string" } } })
  })

  it("gives every array without items an items schema, at any depth", () => {
    expect(
      forModels({
        type: "object",
        properties: {
          tags: { type: "array" },
          nested: { type: "object", properties: { ids: { type: ["array", "null"] } } },
          tuple: { type: "array", prefixItems: [{ type: "string" }] },
          typed: { type: "array", items: { type: "string" } }
        }
      }).parameters
    ).toEqual({
      type: "object",
      properties: {
        tags: { type: "array", items: {} },
        nested: { type: "object", properties: { ids: { type: ["array", "null"], items: {} } } },
        tuple: { type: "array", prefixItems: [{ type: "string" }] },
        typed: { type: "array", items: { type: "string" } }
      }
    })
  })

  it("renames top-level property keys Anthropic refuses, keeps required in step and maps arguments back", () => {
    const long = "x".repeat(70)
    const view = forModels({
      type: "object",
      properties: {
        "filter[id]": { type: "string" },
        filter_id_: { type: "string" },
        "page size": { type: "number" },
        [long]: { type: "boolean" },
        "ok.name-1": { type: "string" }
      },
      required: ["filter[id]", "page size"]
    })
    const keys = Object.keys(view.parameters.properties as object)
    for (const key of keys) expect(key).toMatch(/^[a-zA-Z0-9_.-]{1,64}$/)
    expect(new Set(keys).size).toBe(5)
    expect(keys).toContain("filter_id_")
    expect(keys).toContain("page_size")
    expect(keys).toContain("ok.name-1")
    const renamed = keys.find((key) => key !== "filter_id_" && key.startsWith("filter_id_"))!
    expect(view.parameters.required).toEqual([renamed, "page_size"])
    const longKey = keys.find((key) => key.startsWith("xxx"))!
    expect(longKey.length).toBeLessThanOrEqual(64)
    expect(view.restore({ [renamed]: "a", filter_id_: "b", page_size: 3, [longKey]: true, "ok.name-1": "c" })).toEqual({
      "filter[id]": "a",
      filter_id_: "b",
      "page size": 3,
      [long]: true,
      "ok.name-1": "c"
    })
  })

  it("does not touch its input", () => {
    const schema = { type: "object", properties: { tags: { type: "array" } }, anyOf: [{ required: ["tags"] }] }
    const copy = structuredClone(schema)
    forModels(schema)
    expect(schema).toEqual(copy)
  })
})

describe("compile", () => {
  const check = (schema: Record<string, unknown>, value: unknown) =>
    Effect.map(compile(schema), (validate) => validate(value))

  it.effect("accepts valid arguments and explains invalid ones", () =>
    Effect.gen(function*() {
      const schema = upgrade({
        $schema: "http://json-schema.org/draft-07/schema#",
        type: "object",
        properties: { a: { type: "number" }, b: { type: "number" } },
        required: ["a", "b"]
      })
      expect(yield* check(schema, { a: 1, b: 2 })).toBeUndefined()
      const problem = yield* check(schema, { a: "one" })
      expect(problem).toContain("must be number")
      expect(problem).toContain("must have required property 'b'")
    }))

  it.effect("checks formats, nested objects, $refs and 2020-12 keywords", () =>
    Effect.gen(function*() {
      const schema = {
        type: "object",
        $defs: { point: { type: "object", properties: { x: { type: "number" } }, required: ["x"] } },
        properties: {
          site: { type: "string", format: "uri" },
          at: { $ref: "#/$defs/point" },
          pair: { type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false }
        }
      }
      expect(yield* check(schema, { site: "https://example.test", at: { x: 1 }, pair: ["a", 1] })).toBeUndefined()
      expect(yield* check(schema, { site: "not a uri" })).toContain("must match format \"uri\"")
      expect(yield* check(schema, { at: {} })).toContain("must have required property 'x'")
      expect(yield* check(schema, { pair: ["a", 1, 2] })).toBeDefined()
    }))

  it.effect("compiles a draft-04 schema once upgraded", () =>
    Effect.gen(function*() {
      const schema = upgrade({
        $schema: "http://json-schema.org/draft-04/schema#",
        id: "http://example.test/bounded",
        type: "object",
        properties: { n: { type: "number", minimum: 0, exclusiveMinimum: true } }
      })
      expect(yield* check(schema, { n: 1 })).toBeUndefined()
      expect(yield* check(schema, { n: 0 })).toContain("must be > 0")
    }))

  it.effect("fails, with the reason, on a schema that is not valid JSON Schema", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(compile({ type: "object", properties: { a: { type: "strnig" } } }))
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect(result.left).toContain("type")
    }))

  it.effect("compiles two schemas with the same $id independently", () =>
    Effect.gen(function*() {
      const first = yield* compile(upgrade({ $id: "urn:same", type: "object", required: ["a"] }))
      const second = yield* compile(upgrade({ $id: "urn:same", type: "object", required: ["b"] }))
      expect(first({ a: 1 })).toBeUndefined()
      expect(second({ a: 1 })).toContain("'b'")
    }))
})
