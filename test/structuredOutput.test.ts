/**
 * Structured output (issue 18), whole replies, over loopback against the fake
 * provider for every backend: the request each backend sends (its exact JSON
 * Schema), the value decoded by the Schema (strict mode's nulls read back as
 * absent optional properties), a reply that is not a value (the error
 * carries the raw text and the formatted parse error), repair success and
 * exhaustion, refusals, an object after a tool step, and bad input refused
 * with nothing sent.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { LlmError, LlmOutputError } from "../src/errors.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixtureScript } from "./support/fixtures.js"

const ask = [Message.system("You route requests."), Message.user("Set a timer for five minutes")]

/** The Schema of the tests: a literal, a nested struct with optional fields (one nullable), a refinement, a pattern. */
const Intent = Schema.Struct({
  intent: Schema.Literal("set_timer", "play_music"),
  slots: Schema.Struct({
    minutes: Schema.optional(Schema.Number),
    song: Schema.optional(Schema.NullOr(Schema.String))
  }),
  confidence: Schema.Number.pipe(Schema.between(0, 1)),
  tag: Schema.optional(Schema.String.pipe(Schema.pattern(/^[a-z]+$/)))
}).annotations({ identifier: "Intent" })

/** Intent's JSON Schema as sent where the schema goes as it is (local servers, Anthropic's tool). */
const plainSchema = {
  type: "object",
  required: ["intent", "slots", "confidence"],
  properties: {
    intent: { type: "string", enum: ["set_timer", "play_music"] },
    slots: {
      type: "object",
      required: [],
      properties: {
        minutes: { type: "number" },
        song: { anyOf: [{ type: "string" }, { type: "null" }] }
      },
      additionalProperties: false
    },
    confidence: {
      type: "number",
      description: "a number between 0 and 1",
      title: "between(0, 1)",
      minimum: 0,
      maximum: 1
    },
    tag: { type: "string", description: "a string matching the pattern ^[a-z]+$", pattern: "^[a-z]+$" }
  },
  additionalProperties: false
}

/** Intent's JSON Schema in OpenAI's strict form: all required, optional ones nullable, refused keywords dropped. */
const strictSchema = {
  type: "object",
  required: ["intent", "slots", "confidence", "tag"],
  properties: {
    intent: { type: "string", enum: ["set_timer", "play_music"] },
    slots: {
      type: "object",
      required: ["minutes", "song"],
      properties: {
        minutes: { anyOf: [{ type: "number" }, { type: "null" }] },
        // already nullable: not wrapped again
        song: { anyOf: [{ type: "string" }, { type: "null" }] }
      },
      additionalProperties: false
    },
    confidence: { type: "number", description: "a number between 0 and 1", title: "between(0, 1)" },
    tag: { anyOf: [{ type: "string", description: "a string matching the pattern ^[a-z]+$" }, { type: "null" }] }
  },
  additionalProperties: false
}

/** What each backend must send for Intent (the part of the body about the response format). */
const expectedRequest = (backend: Backend): Record<string, unknown> => {
  switch (backend.name) {
    case "openai":
      return {
        response_format: { type: "json_schema", json_schema: { name: "Intent", schema: strictSchema, strict: true } }
      }
    case "openrouter":
      return {
        response_format: { type: "json_schema", json_schema: { name: "Intent", schema: strictSchema, strict: true } },
        provider: { require_parameters: true }
      }
    case "local":
      return { response_format: { type: "json_schema", json_schema: { name: "Intent", schema: plainSchema } } }
    default:
      return {
        tools: [{
          name: "Intent",
          description: "Give your answer by calling this tool with it as the input.",
          input_schema: plainSchema,
          // the last tool ends the prompt cache's tool prefix
          cache_control: { type: "ephemeral" }
        }],
        tool_choice: { type: "tool", name: "Intent" }
      }
  }
}

/** The reply carrying `json` as each backend sends a structured value: the text, or Anthropic's output tool call. */
const valueReply = (backend: Backend, json: unknown, name = "Intent"): FakeProvider.Script =>
  backend.protocol === "messages"
    ? { kind: "reply", toolCalls: [{ id: "toolu_out", name, arguments: json as Record<string, unknown> }] }
    : { kind: "reply", text: JSON.stringify(json) }

/** What a strict backend sends: every property, null for the absent ones. */
const strictJson = { intent: "set_timer", slots: { minutes: 5, song: null }, confidence: 0.9, tag: null }

/** The request bodies the server got. */
const bodies = (server: FakeProvider.FakeProvider) =>
  server.requests.map((request) => request.body as Record<string, unknown>)

/** Runs `f` with `backend` pointed at a fresh fake server. */
const withBackend = <A, E>(
  backend: Backend,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>,
  options?: ProviderOptions
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(backend.layer(server.url, options)))
  }))

const isOutputError = (error: LlmError | LlmOutputError): error is LlmOutputError => error._tag === "LlmOutputError"

/** The output error a call failed with (failing the test on any other). */
const outputErrorOf = (error: LlmError | LlmOutputError | Tool.ToolExecutionError): LlmOutputError => {
  if (error._tag !== "LlmOutputError") throw new Error(`expected LlmOutputError, got ${error._tag}: ${error.message}`)
  return error
}

for (const backend of backends) {
  describe(`generateObject: ${backend.name}`, () => {
    it.live("sends the Schema's JSON Schema the backend's strongest way, and decodes the value", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(valueReply(backend, strictJson))
          const result = yield* Llm.generateObject(ask, Intent)
          // strict mode's null for an absent optional property is absent again; a nullable one keeps its null
          expect(result.value).toStrictEqual({
            intent: "set_timer",
            slots: { minutes: 5, song: null },
            confidence: 0.9
          })
          expect(JSON.parse(result.text)).toStrictEqual(strictJson)
          expect(result.finishReason).toBe("stop")
          expect(result.attempts).toBe(1)
          expect(result.metadata.provider).toBe(backend.provider)
          expect(result.usage.inputTokens).toBe(10)
          expect(result.toMessage().content).toBe(result.text)
          const body = bodies(server)[0]!
          expect(body).toMatchObject(expectedRequest(backend))
          // exactly the schema expected, nothing more
          const expected = expectedRequest(backend)
          for (const key of Object.keys(expected)) expect(body[key]).toStrictEqual(expected[key])
          // the conversation goes as it was
          expect(JSON.stringify(body)).toContain("Set a timer for five minutes")
        })))

    it.live("a Schema that is not an object is sent wrapped in { value } and read back unwrapped", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const Steps = Schema.Array(Schema.String)
          server.enqueue(valueReply(backend, { value: ["boil", "stir"] }, "output"))
          const result = yield* Llm.generateObject(ask, Steps)
          expect(result.value).toStrictEqual(["boil", "stir"])
          const wrapped = {
            type: "object",
            properties: { value: { type: "array", items: { type: "string" } } },
            required: ["value"],
            additionalProperties: false
          }
          const body = bodies(server)[0]!
          const sent = backend.protocol === "messages"
            ? (body.tools as ReadonlyArray<Record<string, unknown>>)[0]!.input_schema
            : ((body.response_format as Record<string, unknown>).json_schema as Record<string, unknown>).schema
          expect(sent).toStrictEqual(wrapped)
        })))

    it.live("a reply that is not a value of the Schema fails with LlmOutputError: raw text and the parse error", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const wrong = { intent: "dance", slots: {}, confidence: 2 }
          server.enqueue(valueReply(backend, wrong))
          const error = outputErrorOf(yield* Effect.flip(Llm.generateObject(ask, Intent)))
          expect(error.reason).toBe("invalid")
          expect(JSON.parse(error.text)).toStrictEqual(wrong)
          expect(error.issue).toContain("\"dance\"")
          expect(error.issue).toContain("between(0, 1)")
          expect(error.message).toContain("not a value of the Schema")
          expect(error.provider).toBe(backend.provider)
          expect(error.attempts).toBe(1)
          // not repaired by default: one call
          expect(server.requests).toHaveLength(1)
        })))

    it.live("a reply that is not JSON fails with the text and the JSON parser's error", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "Sure, a timer for five minutes!" })
          const error = outputErrorOf(yield* Effect.flip(Llm.generateObject(ask, Intent)))
          expect(error.reason).toBe("invalid")
          expect(error.text).toBe("Sure, a timer for five minutes!")
          expect(error.issue).toMatch(/^the reply is not JSON: /)
        })))

    it.live("repair sends the parse error back and takes the corrected value", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(
            valueReply(backend, { intent: "set_timer", slots: {}, confidence: 7 }),
            valueReply(backend, { intent: "set_timer", slots: { minutes: 5 }, confidence: 0.8 })
          )
          const result = yield* Llm.generateObject(ask, Intent, { repair: 2 })
          expect(result.value).toStrictEqual({ intent: "set_timer", slots: { minutes: 5 }, confidence: 0.8 })
          expect(result.attempts).toBe(2)
          expect(result.usage.inputTokens).toBe(20)
          expect(server.requests).toHaveLength(2)
          // the second request: the history, the invalid reply as the assistant's, then the correction
          const second = JSON.stringify(bodies(server)[1])
          expect(second).toContain("Set a timer for five minutes")
          expect(second).toContain("Your reply is not a valid value of the JSON Schema asked for")
          expect(second).toContain("between(0, 1)")
          expect(second).toContain("\\\"confidence\\\":7")
          // it still asks for the schema
          expect(bodies(server)[1]).toMatchObject(expectedRequest(backend))
        })))

    it.live("repair exhausted: LlmOutputError with the last reply and the calls made", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(
            valueReply(backend, { intent: "x", slots: {}, confidence: 0.5 }),
            valueReply(backend, { intent: "y", slots: {}, confidence: 0.5 })
          )
          const error = outputErrorOf(yield* Effect.flip(Llm.generateObject(ask, Intent, { repair: 1 })))
          expect(error.reason).toBe("invalid")
          expect(JSON.parse(error.text)).toStrictEqual({ intent: "y", slots: {}, confidence: 0.5 })
          expect(error.attempts).toBe(2)
          expect(server.requests).toHaveLength(2)
        })))

    it.live("a refusal is its own reason, never repaired", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue(
            backend.protocol === "messages"
              ? { kind: "reply", text: "I can't help with that.", finishReason: "content_filter" }
              : { kind: "reply", refusal: "I can't help with that." }
          )
          const error = outputErrorOf(yield* Effect.flip(Llm.generateObject(ask, Intent, { repair: 3 })))
          expect(error.reason).toBe("refused")
          expect(error.text).toBe("I can't help with that.")
          expect(error.message).toContain("refused")
          expect(server.requests).toHaveLength(1)
        })))

    it.live("a reply cut at the output limit is truncated", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "{\"intent\":\"set_ti", finishReason: "length" })
          const error = outputErrorOf(yield* Effect.flip(Llm.generateObject(ask, Intent, { repair: 2 })))
          expect(error.reason).toBe("truncated")
          expect(error.text).toBe("{\"intent\":\"set_ti")
          expect(server.requests).toHaveLength(1)
        })))

    it.live("an object after a tool step: the loop runs the tool, then the model answers with the value", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const Forecast = Schema.Struct({ city: Schema.String, celsius: Schema.Number })
          const weather = Tool.make("weather", {
            description: "The weather in a city",
            parameters: Schema.Struct({ location: Schema.String }),
            handler: ({ location }) => Effect.succeed(`${location}: 18 degrees`)
          })
          server.enqueue(
            backend.protocol === "messages"
              // Anthropic's own recorded reply: the model called the other tool although the output tool was offered
              ? fixtureScript("anthropic/anthropic-json-other-tool.1.json")
              : {
                kind: "reply",
                toolCalls: [{ id: "call_w", name: "weather", arguments: { location: "San Francisco" } }]
              },
            valueReply(backend, { city: "San Francisco", celsius: 18 }, "output")
          )
          const run = yield* Toolkit.generateObject(
            [Message.user("Weather in SF?")],
            Toolkit.make(weather),
            Forecast
          )
          expect(run.result.value).toStrictEqual({ city: "San Francisco", celsius: 18 })
          expect(run.steps).toBe(2)
          expect(run.added.map((message) => message.role)).toStrictEqual(["assistant", "tool", "assistant"])
          expect(run.added[1]!.content).toBe("San Francisco: 18 degrees")
          const [first, second] = bodies(server)
          // both steps offer the tool and ask for the value
          for (const body of [first!, second!]) {
            if (backend.protocol === "messages") {
              expect((body.tools as ReadonlyArray<{ name: string }>).map((tool) => tool.name)).toStrictEqual([
                "weather",
                "output"
              ])
              // beside the toolkit's tools, the model must call one of them (the output tool among them)
              expect(body.tool_choice).toStrictEqual({ type: "any" })
            } else {
              expect((body.tools as ReadonlyArray<{ function: { name: string } }>)[0]!.function.name).toBe("weather")
              expect((body.response_format as { type: string }).type).toBe("json_schema")
            }
          }
          expect(JSON.stringify(second)).toContain("San Francisco: 18 degrees")
        })))

    it.live("bad input is a typed error and nothing is sent", () =>
      withBackend(backend, (server) =>
        Effect.gen(function*() {
          const badName = yield* Effect.flip(Llm.generateObject(ask, Intent, { name: "an intent" }))
          expect(badName._tag).toBe("LlmInvalidRequestError")
          expect(badName.message).toContain("nothing was sent")
          expect(badName.message).toContain("\"an intent\"")
          const noJsonSchema = yield* Effect.flip(Llm.generateObject(ask, Schema.DateFromSelf))
          expect(noJsonSchema._tag).toBe("LlmInvalidRequestError")
          expect(noJsonSchema.message).toContain("the Schema has no JSON Schema")
          const badRepair = yield* Effect.flip(Llm.generateObject(ask, Intent, { repair: -1 }))
          expect(badRepair.message).toContain("repair must be a non-negative integer")
          expect(server.requests).toHaveLength(0)
          expect([badName, noJsonSchema, badRepair].some(isOutputError)).toBe(false)
        })))
  })
}

describe("generateObject: Anthropic's output tool", () => {
  const anthropic = backends.find((backend) => backend.name === "anthropic")!

  it.live("refuses thinking with a forced tool, and a tool named like the output", () =>
    withBackend(anthropic, (server) =>
      Effect.gen(function*() {
        const thinking = yield* Effect.flip(
          Llm.generateObject(ask, Intent, { reasoning: { budgetTokens: 2048 }, maxTokens: 512 })
        )
        expect(thinking.message).toContain("structuredOutput: \"native\"")
        const clash = yield* Effect.flip(
          Llm.generateObject(ask, Intent, { tools: [Message.toolDefinition({ name: "Intent" })] })
        )
        expect(clash.message).toContain("the name of the response format's output tool")
        expect(server.requests).toHaveLength(0)
      })))

  it.live("native structured output sends output_config.format (objects closed, refused keywords dropped)", () =>
    withBackend(anthropic, (server) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", text: JSON.stringify({ intent: "play_music", slots: {}, confidence: 1 }) })
        const result = yield* Llm.generateObject(ask, Intent, { reasoning: { budgetTokens: 2048 }, maxTokens: 512 })
        expect(result.value).toStrictEqual({ intent: "play_music", slots: {}, confidence: 1 })
        const body = bodies(server)[0]!
        expect(body.tools).toBeUndefined()
        expect(body.tool_choice).toBeUndefined()
        expect(body.thinking).toStrictEqual({ type: "enabled", budget_tokens: 2048 })
        expect(body.output_config).toStrictEqual({
          format: {
            type: "json_schema",
            schema: {
              ...plainSchema,
              properties: {
                ...plainSchema.properties,
                confidence: { type: "number", description: "a number between 0 and 1", title: "between(0, 1)" },
                tag: { type: "string", description: "a string matching the pattern ^[a-z]+$" }
              }
            }
          }
        })
      }), { structuredOutput: "native" } as ProviderOptions))
})
