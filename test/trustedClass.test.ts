/**
 * internal/trustedClass.ts: an instance made from trusted fields is what
 * `new C(fields, true)` makes (prototype, own fields, equality, hash,
 * encoding), for every class the hot paths make that way, with and without
 * its optional fields; a class whose constructor would fill in a default is
 * refused when the maker is made.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import * as Schema from "effect/Schema"
import * as Trusted from "../src/internal/trustedClass.js"
import { ReasoningPart, ToolCall } from "../src/Message.js"
import { CompletionResult, ResponseMetadata } from "../src/Reply.js"
import { Usage } from "../src/Usage.js"

/** Own keys (symbols included) with their values. */
const ownOf = (value: object) =>
  Reflect.ownKeys(value).map((key) => [String(key), (value as Record<PropertyKey, unknown>)[key]] as const)

const expectSame = <A extends object>(made: A, built: A, schema: Schema.Schema<A, any>) => {
  expect(Object.getPrototypeOf(made)).toBe(Object.getPrototypeOf(built))
  expect(ownOf(made)).toStrictEqual(ownOf(built))
  expect(Equal.equals(made, built)).toBe(true)
  expect(Hash.hash(made)).toBe(Hash.hash(built))
  expect(Schema.is(schema)(made)).toBe(true)
  expect(Schema.encodeSync(schema)(made)).toStrictEqual(Schema.encodeSync(schema)(built))
}

describe("trusted class instances", () => {
  it("a Usage, bare and with every optional counter", () => {
    const bare = { inputTokens: 3, outputTokens: 5, totalTokens: 8 }
    expectSame(Trusted.usage(bare), new Usage(bare, true), Usage)
    const full = {
      ...bare,
      cachedInputTokens: 1,
      cacheWriteInputTokens: 2,
      reasoningTokens: 4,
      cost: 0.25
    }
    expectSame(Trusted.usage(full), new Usage(full, true), Usage)
    // a made Usage adds up like a built one
    expect(Usage.add(Trusted.usage(full), Trusted.usage(bare))).toStrictEqual(
      Usage.add(new Usage(full, true), new Usage(bare, true))
    )
  })

  it("a ResponseMetadata, bare and with its optional fields", () => {
    const bare = { provider: "openai", attempts: 1, latencyMillis: 12 }
    expectSame(Trusted.responseMetadata(bare), new ResponseMetadata(bare, true), ResponseMetadata)
    const full = {
      ...bare,
      responseId: "resp-1",
      requestId: "req-1",
      firstTokenMillis: 4,
      timings: { promptTokens: 10, generationTokensPerSecond: 50 }
    }
    expectSame(Trusted.responseMetadata(full), new ResponseMetadata(full, true), ResponseMetadata)
  })

  it("a CompletionResult with tool calls, reasoning and metadata", () => {
    const fields = {
      content: "hello",
      model: "m",
      finishReason: "tool_calls" as const,
      toolCalls: [new ToolCall({ id: "c1", name: "lookup", arguments: { q: "x" } })],
      usage: Trusted.usage({ inputTokens: 1, outputTokens: 2, totalTokens: 3 }),
      reasoning: "because",
      reasoningParts: [new ReasoningPart({ text: "because", provider: "openai" })],
      metadata: Trusted.responseMetadata({ provider: "openai", attempts: 2, latencyMillis: 30 })
    }
    const made = Trusted.completionResult(fields)
    expectSame(made, new CompletionResult(fields, true), CompletionResult)
    expect(made.content).toBe("hello")
    expect(made.metadata.attempts).toBe(2)
  })

  it("refuses a class whose constructor fills in a default, naming the field", () => {
    class WithDefault extends Schema.Class<WithDefault>("WithDefault")({
      name: Schema.String,
      count: Schema.Number.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 0))
    }) {}
    class WithOptionalDefault extends Schema.Class<WithOptionalDefault>("WithOptionalDefault")({
      tags: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
    }) {}
    expect(() => Trusted.trusted(WithDefault)).toThrow("WithDefault.count has a constructor default")
    expect(() => Trusted.trusted(WithOptionalDefault)).toThrow("WithOptionalDefault.tags has a constructor default")
    // a class without defaults is accepted, optional fields and all
    class Plain extends Schema.Class<Plain>("Plain")({ name: Schema.String, note: Schema.optional(Schema.String) }) {}
    const make = Trusted.trusted(Plain)
    expectSame(make({ name: "a" }), new Plain({ name: "a" }), Plain)
  })
})
