/**
 * The `reasoning` option, per call and per layer, mapped to what each backend
 * reads (request bodies checked over loopback), and refused with a typed
 * error, before anything is sent, when a backend cannot take it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import type { ReasoningOption } from "../src/Llm.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const backend = (name: string) => backends.find((b) => b.name === name)!
const hi = [Message.user("Hi")]

/** The body the named backend sends for one call with `options`, its layer built with `layer`. */
const sentBody = (name: string, options: Llm.CompletionOptions, layer: ProviderOptions = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    yield* Llm.complete(hi, options).pipe(Effect.provide(backend(name).layer(server.url, layer)))
    return server.requests[0]!.body as Record<string, unknown>
  }))

/** The typed error and request count of a call the named backend must refuse. */
const refusal = (name: string, options: Llm.CompletionOptions, messages: ReadonlyArray<Message.Message> = hi) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    const error = yield* Effect.flip(
      Llm.complete(messages, options).pipe(Effect.provide(backend(name).layer(server.url)))
    )
    return { tag: error._tag, message: error.message, requests: server.requests.length }
  }))

/** The fields of a body that carry the reasoning option (and Anthropic's output limit). */
const reasoningFields = (body: Record<string, unknown>) => {
  const out: Record<string, unknown> = {}
  for (const key of ["reasoning_effort", "reasoning", "thinking", "chat_template_kwargs", "max_tokens"]) {
    if (key in body) out[key] = body[key]
  }
  return out
}

/** Option → fields, per backend. */
const table: ReadonlyArray<{ readonly option: ReasoningOption; readonly expected: Record<string, unknown> }> = [
  {
    option: { effort: "low" },
    expected: {
      local: { reasoning_effort: "low" },
      openai: { reasoning_effort: "low" },
      openrouter: { reasoning: { effort: "low" } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 1024 }, max_tokens: 1024 + 1024 }
    }
  },
  {
    option: { effort: "medium" },
    expected: {
      local: { reasoning_effort: "medium" },
      openai: { reasoning_effort: "medium" },
      openrouter: { reasoning: { effort: "medium" } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 4096 }, max_tokens: 4096 + 1024 }
    }
  },
  {
    option: { effort: "high" },
    expected: {
      local: { reasoning_effort: "high" },
      openai: { reasoning_effort: "high" },
      openrouter: { reasoning: { effort: "high" } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 16384 }, max_tokens: 16384 + 1024 }
    }
  },
  {
    option: { budgetTokens: 2048 },
    expected: {
      local: { reasoning_effort: "low" },
      openai: { reasoning_effort: "low" },
      openrouter: { reasoning: { max_tokens: 2048 } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 2048 }, max_tokens: 2048 + 1024 }
    }
  },
  {
    option: { budgetTokens: 6000 },
    expected: {
      local: { reasoning_effort: "medium" },
      openai: { reasoning_effort: "medium" },
      openrouter: { reasoning: { max_tokens: 6000 } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 6000 }, max_tokens: 6000 + 1024 }
    }
  },
  {
    option: { budgetTokens: 20000 },
    expected: {
      local: { reasoning_effort: "high" },
      openai: { reasoning_effort: "high" },
      openrouter: { reasoning: { max_tokens: 20000 } },
      anthropic: { thinking: { type: "enabled", budget_tokens: 20000 }, max_tokens: 20000 + 1024 }
    }
  },
  {
    option: { enabled: false },
    expected: {
      local: { reasoning_effort: "none" },
      // OpenAI: "none" exists only from gpt-5.1 on, and older models refuse it: nothing is sent
      openai: {},
      openrouter: { reasoning: { enabled: false } },
      // newer Claude models refuse thinking.type "disabled"; without `thinking` the older ones do not think
      anthropic: { max_tokens: 1024 }
    }
  }
]

describe("the reasoning option, mapped per backend", () => {
  for (const name of ["local", "openai", "openrouter", "anthropic"]) {
    it.live(`${name}: each option becomes the backend's own field`, () =>
      Effect.gen(function*() {
        for (const { expected, option } of table) {
          const body = yield* sentBody(name, { reasoning: option })
          expect(reasoningFields(body), JSON.stringify(option)).toEqual(expected[name])
        }
        // no option, no field
        const plainBody = yield* sentBody(name, {})
        expect(reasoningFields(plainBody)).toEqual(name === "anthropic" ? { max_tokens: 1024 } : {})
      }))
  }

  it.live("anthropic: max_tokens is the budget plus the call's maxTokens, left for the answer", () =>
    Effect.gen(function*() {
      const body = yield* sentBody("anthropic", { reasoning: { budgetTokens: 3000 }, maxTokens: 500 })
      expect(reasoningFields(body)).toEqual({ thinking: { type: "enabled", budget_tokens: 3000 }, max_tokens: 3500 })
    }))

  it.live("a layer's reasoning is the default of every call; a call's own overrides it", () =>
    Effect.gen(function*() {
      const layer: ProviderOptions = { reasoning: { effort: "high" } }
      expect(reasoningFields(yield* sentBody("local", {}, layer))).toEqual({ reasoning_effort: "high" })
      expect(reasoningFields(yield* sentBody("local", { reasoning: { enabled: false } }, layer))).toEqual({
        reasoning_effort: "none"
      })
      expect(reasoningFields(yield* sentBody("anthropic", {}, layer))).toEqual({
        thinking: { type: "enabled", budget_tokens: 16384 },
        max_tokens: 16384 + 1024
      })
    }))

  it("a dialect that reads chat-template arguments gets them there", () => {
    const codec = ChatCompletions.make({ reasoningRequest: "chat_template_kwargs" })
    const body = (reasoning: ReasoningOption) => {
      const encoded = codec.encode({ model: "m", messages: hi, options: { reasoning }, stream: false })
      if ("invalid" in encoded) throw new Error(encoded.invalid)
      return reasoningFields(encoded.body as Record<string, unknown>)
    }
    expect(body({ effort: "medium" })).toEqual({ chat_template_kwargs: { reasoning_effort: "medium" } })
    expect(body({ budgetTokens: 1500 })).toEqual({ chat_template_kwargs: { reasoning_effort: "low" } })
    expect(body({ enabled: false })).toEqual({ chat_template_kwargs: { enable_thinking: false } })
  })

  it("a codec without a reasoningRequest sends nothing for the option", () => {
    const encoded = ChatCompletions.make().encode({
      model: "m",
      messages: hi,
      options: { reasoning: { effort: "high" } },
      stream: false
    })
    expect("body" in encoded && reasoningFields(encoded.body as Record<string, unknown>)).toEqual({})
  })
})

describe("reasoning options no backend can take are refused before sending", () => {
  const bad: ReadonlyArray<readonly [unknown, RegExp]> = [
    [{ effort: "max" }, /reasoning\.effort must be "low", "medium" or "high", got "max"/],
    [{ budgetTokens: 1.5 }, /reasoning\.budgetTokens must be a positive integer, got 1\.5/],
    [{ budgetTokens: 0 }, /reasoning\.budgetTokens must be a positive integer, got 0/],
    [{ budgetTokens: "2000" }, /reasoning\.budgetTokens must be a positive integer, got "2000"/],
    [{ effort: "low", budgetTokens: 2000 }, /either reasoning\.effort or reasoning\.budgetTokens, not both/],
    [{ enabled: true }, /reasoning\.enabled can only be false/],
    [{}, /reasoning needs effort, budgetTokens or enabled: false/],
    ["high", /reasoning must be an object/]
  ]
  for (const name of ["local", "openai", "openrouter", "anthropic"]) {
    it.live(`${name}: a typed LlmInvalidRequestError, and no request`, () =>
      Effect.gen(function*() {
        for (const [option, message] of bad) {
          const refused = yield* refusal(name, { reasoning: option as ReasoningOption })
          expect(refused.tag, JSON.stringify(option)).toBe("LlmInvalidRequestError")
          expect(refused.message).toMatch(message)
          expect(refused.requests).toBe(0)
        }
      }))
  }

  it.live("anthropic: a budget under 1024 tokens (Anthropic's minimum)", () =>
    Effect.gen(function*() {
      const refused = yield* refusal("anthropic", { reasoning: { budgetTokens: 1000 } })
      expect(refused).toMatchObject({ tag: "LlmInvalidRequestError", requests: 0 })
      expect(refused.message).toMatch(/at least 1024/)
      // the same budget is an effort elsewhere
      expect(reasoningFields(yield* sentBody("openai", { reasoning: { budgetTokens: 1000 } }))).toEqual({
        reasoning_effort: "low"
      })
    }))

  it.live("anthropic: what extended thinking cannot be combined with", () =>
    Effect.gen(function*() {
      const tools = [Message.toolDefinition({ name: "get_weather" })]
      for (
        const [options, message] of [
          [{ temperature: 0.5 }, /temperature/],
          [{ topP: 0.5 }, /topP/],
          [{ tools, toolChoice: "required" }, /forces a tool/],
          [{ tools, toolChoice: { name: "get_weather" } }, /forces a tool/]
        ] as const
      ) {
        const refused = yield* refusal("anthropic", { ...options, reasoning: { effort: "low" } })
        expect(refused, JSON.stringify(options)).toMatchObject({ tag: "LlmInvalidRequestError", requests: 0 })
        expect(refused.message).toMatch(message)
      }
      // temperature 1 and topP from 0.95 are what thinking allows
      const body = yield* sentBody("anthropic", { temperature: 1, topP: 0.95, reasoning: { effort: "low" } })
      expect(body).toMatchObject({ temperature: 1, top_p: 0.95, thinking: { type: "enabled", budget_tokens: 1024 } })
    }))
})

describe("anthropic: thinking and the last tool step", () => {
  const call = { id: "toolu_1", name: "get_weather", arguments: { city: "Oslo" } }
  const tools = [Message.toolDefinition({ name: "get_weather" })]
  const step = (reasoning: ReadonlyArray<Message.ReasoningPartInput>) => [
    Message.user("Weather?"),
    Message.assistant("", [call], { reasoning }),
    Message.tool({ toolCallId: "toolu_1", name: "get_weather", content: "rain" })
  ]
  const bodyFor = (messages: ReadonlyArray<Message.Message>) =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      yield* Llm.complete(messages, { tools, reasoning: { effort: "low" } }).pipe(
        Effect.provide(backend("anthropic").layer(server.url))
      )
      return server.requests[0]!.body as Record<string, unknown>
    }))

  it.live("a step that kept its signed thinking is continued with thinking on", () =>
    Effect.gen(function*() {
      const body = yield* bodyFor(step([{ text: "Check.", signature: "sig", provider: "anthropic" }]))
      expect(reasoningFields(body)).toEqual({ thinking: { type: "enabled", budget_tokens: 1024 }, max_tokens: 2048 })
    }))

  it.live("a step without one (made elsewhere, or by a call without thinking) is continued with thinking off", () =>
    Effect.gen(function*() {
      for (const reasoning of [[], [{ text: "Local thought.", provider: "local" }]]) {
        const body = yield* bodyFor(step(reasoning))
        expect(reasoningFields(body), JSON.stringify(reasoning)).toEqual({ max_tokens: 1024 })
      }
    }))
})
