/**
 * How each dialect sends a structured output (issue 18), over loopback: the
 * local servers' `json_schema` (mlx_lm, which reads none, the schema in the
 * system prompt with `json_object`), OpenRouter's routing preference merged
 * with the layer's own, and strict mode's fallback for a schema it cannot
 * express; and the JSON Schema reshaping itself (strict form, nulls read
 * back, unions).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { constrained, prepare } from "../src/internal/outputSchema.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as FakeProvider from "./support/FakeProvider.js"

const Reminder = Schema.Struct({ text: Schema.String, minutes: Schema.optional(Schema.Number) })

const reminderSchema = {
  type: "object",
  required: ["text"],
  properties: { text: { type: "string" }, minutes: { type: "number" } },
  additionalProperties: false
}

/** Runs `f` against a fresh fake server with the layer `make` builds for its URL. */
const against = <A, E>(
  make: (url: string) => Layer.Layer<Llm.Llm>,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(make(server.url)))
  }))

const bodyOf = (server: FakeProvider.FakeProvider, i = 0) => server.requests[i]!.body as Record<string, unknown>

describe("structured output per local dialect", () => {
  for (const server of ["llama.cpp", "ollama", "vllm", "lmstudio"] as const) {
    it.live(`${server}: response_format json_schema with the schema as it is`, () =>
      against((url) => Local.layer({ baseUrl: url, model: "m", server }), (fake) =>
        Effect.gen(function*() {
          fake.enqueue({ kind: "reply", text: "{\"text\":\"tea\"}" })
          const result = yield* Llm.generateObject([Message.user("remind me")], Reminder, { name: "reminder" })
          expect(result.value).toStrictEqual({ text: "tea" })
          expect(bodyOf(fake).response_format).toStrictEqual({
            type: "json_schema",
            json_schema: { name: "reminder", schema: reminderSchema }
          })
        })))
  }

  it.live("mlx: json_object, and the schema in the first system message", () =>
    against((url) => Local.layer({ baseUrl: url, model: "m", server: "mlx" }), (fake) =>
      Effect.gen(function*() {
        fake.enqueue({ kind: "reply", text: "{\"text\":\"tea\"}" }, { kind: "reply", text: "{\"text\":\"tea\"}" })
        const instruction =
          `Reply with only one JSON value (a reminder), with no other text, that matches this JSON Schema:\n${
            JSON.stringify(reminderSchema)
          }`
        yield* Llm.generateObject([Message.system("Be brief."), Message.user("remind me")], Reminder, {
          description: "a reminder"
        })
        expect(bodyOf(fake).response_format).toStrictEqual({ type: "json_object" })
        expect(bodyOf(fake).messages).toStrictEqual([
          { role: "system", content: `Be brief.\n\n${instruction}` },
          { role: "user", content: "remind me" }
        ])
        // without a system message, one is added first
        yield* Llm.generateObject([Message.user("remind me")], Reminder, { description: "a reminder" })
        expect(bodyOf(fake, 1).messages).toStrictEqual([
          { role: "system", content: instruction },
          { role: "user", content: "remind me" }
        ])
      })))
})

describe("structured output: OpenAI and OpenRouter", () => {
  const key = Redacted.make("sk-test")

  it.live("OpenRouter merges require_parameters into the layer's provider routing", () =>
    against(
      (url) =>
        OpenRouter.layer({
          baseUrl: `${url}/api/v1`,
          apiKey: key,
          extraBody: { provider: { order: ["groq", "openai"] } }
        }),
      (fake) =>
        Effect.gen(function*() {
          fake.enqueue({ kind: "reply", text: "{\"text\":\"tea\",\"minutes\":null}" })
          const result = yield* Llm.generateObject([Message.user("remind me")], Reminder)
          expect(result.value).toStrictEqual({ text: "tea" })
          expect(bodyOf(fake).provider).toStrictEqual({ order: ["groq", "openai"], require_parameters: true })
          // a call without a response format is routed as before
          yield* Llm.complete([Message.user("hi")])
          expect(bodyOf(fake, 1).provider).toStrictEqual({ order: ["groq", "openai"] })
          expect(bodyOf(fake, 1).response_format).toBeUndefined()
        })
    ))

  it.live("a schema strict mode cannot express (free-form keys) is sent as it is, strict: false, and still checked", () =>
    against((url) => OpenAi.layer({ baseUrl: `${url}/v1`, apiKey: key }), (fake) =>
      Effect.gen(function*() {
        const Scores = Schema.Record({ key: Schema.String, value: Schema.Number })
        fake.enqueue({ kind: "reply", text: "{\"ann\":3,\"bob\":\"x\"}" }, { kind: "reply", text: "{\"ann\":3}" })
        const error = yield* Effect.flip(Llm.generateObject([Message.user("scores")], Scores))
        expect(error._tag).toBe("LlmOutputError")
        expect(bodyOf(fake).response_format).toStrictEqual({
          type: "json_schema",
          json_schema: {
            name: "output",
            schema: { type: "object", required: [], properties: {}, additionalProperties: { type: "number" } },
            strict: false
          }
        })
        const result = yield* Llm.generateObject([Message.user("scores")], Scores)
        expect(result.value).toStrictEqual({ ann: 3 })
      })))
})

describe("the JSON Schema of a structured output", () => {
  it("has no strict form for free-form keys, allOf or an unconstrained value", () => {
    expect(constrained({ type: "object", properties: { a: {} } }, { allRequired: true })).toBeUndefined()
    expect(constrained({ type: "object", properties: { a: { allOf: [{ type: "string" }] } } }, { allRequired: true }))
      .toBeUndefined()
    expect(constrained({ type: "object", patternProperties: { "": { type: "string" } } }, { allRequired: false }))
      .toBeUndefined()
    expect(constrained({
      type: "object",
      required: ["a"],
      properties: { a: { oneOf: [{ type: "string" }, { type: "number" }] } }
    }, { allRequired: true })).toStrictEqual({
      type: "object",
      properties: { a: { anyOf: [{ type: "string" }, { type: "number" }] } },
      additionalProperties: false,
      required: ["a"]
    })
  })

  it("reads strict mode's nulls back through unions, arrays and references", () => {
    class Item extends Schema.Class<Item>("Item")({ name: Schema.String, note: Schema.optional(Schema.String) }) {}
    const Order = Schema.Struct({
      items: Schema.Array(Item),
      pick: Schema.Union(
        Schema.Struct({ kind: Schema.Literal("a"), x: Schema.optional(Schema.Number) }),
        Schema.Struct({ kind: Schema.Literal("b"), y: Schema.optional(Schema.String) })
      ),
      maybe: Schema.optional(Schema.NullOr(Schema.String))
    })
    const output = prepare(Order)
    if (typeof output === "string") throw new Error(output)
    expect(output.wrapped).toBe(false)
    expect(output.read({
      items: [{ name: "tea", note: null }, { name: "milk", note: "oat" }],
      pick: { kind: "b", y: null },
      maybe: null
    })).toStrictEqual({
      items: [{ name: "tea" }, { name: "milk", note: "oat" }],
      pick: { kind: "b" },
      maybe: null
    })
    // a value with nothing to restore is the same object
    const plain = { items: [], pick: { kind: "a", x: 1 } }
    expect(output.read(plain)).toBe(plain)
  })

  it("names the format after the Schema's identifier, a Class's included", () => {
    class Person extends Schema.Class<Person>("Person")({ name: Schema.String }) {}
    const named = prepare(Person)
    if (typeof named === "string") throw new Error(named)
    expect(named.format.name).toBe("Person")
    const anonymous = prepare(Schema.Struct({ a: Schema.String }).annotations({ identifier: "not a name" }))
    if (typeof anonymous === "string") throw new Error(anonymous)
    expect(anonymous.format.name).toBe("output")
  })
})
