/**
 * The cost of a reply, over real HTTP to the fake provider: priced from the
 * table (cached tokens at the cache-read price, Anthropic's cache writes at
 * the cache-write price), OpenRouter's reported cost winning, local backends
 * free, unknown models without a cost, and the table overridden by a layer
 * or a configuration file's `pricing:` section.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as LlmConfig from "../src/Config.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as Pricing from "../src/Pricing.js"
import * as LlmStream from "../src/Stream.js"
import { Usage } from "../src/Usage.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hello?")]
const key = Redacted.make("sk-test-pricing")

/** The reply of `layer` to one call, whole and streamed. */
const both = (layer: Layer.Layer<Llm.Llm>) =>
  Effect.all([Llm.complete(hi), LlmStream.collect(Llm.stream(hi))]).pipe(Effect.provide(layer))

/** Dollars from a count of tokens and a price per million. */
const dollars = (...terms: ReadonlyArray<readonly [tokens: number, perMillion: number]>) =>
  terms.reduce((sum, [tokens, price]) => sum + tokens * price, 0) / 1_000_000

describe("Pricing.cost", () => {
  it("prices fresh input, cache reads, cache writes and output at their own prices", () => {
    const usage = new Usage({
      inputTokens: 1000,
      outputTokens: 100,
      totalTokens: 1100,
      cachedInputTokens: 300,
      cacheWriteInputTokens: 200,
      reasoningTokens: 40
    })
    const price = { input: 2, output: 8, cacheRead: 0.5, cacheWrite: 2.5 }
    // reasoning tokens are output tokens: priced once, within outputTokens
    expect(Pricing.cost(price, usage)).toBeCloseTo(dollars([500, 2], [300, 0.5], [200, 2.5], [100, 8]), 12)
    // without cache prices, cached and written tokens cost what input costs
    expect(Pricing.cost({ input: 2, output: 8 }, usage)).toBeCloseTo(dollars([1000, 2], [100, 8]), 12)
  })

  it("a provider's \"*\" entry prices the models it does not list; a model's own entry wins", () => {
    const pricing = Pricing.make({
      takenOn: "2026-01-01",
      sources: [],
      prices: { acme: { "*": { input: 1, output: 1 }, "acme-2": { input: 5, output: 5 } } }
    })
    expect(pricing.lookup("acme", "acme-1")).toEqual({ input: 1, output: 1 })
    expect(pricing.lookup("acme", "acme-2")).toEqual({ input: 5, output: 5 })
    expect(pricing.lookup("other", "acme-1")).toBeUndefined()
    expect(pricing.lookup("acme", "constructor")).toEqual({ input: 1, output: 1 })
    expect(pricing.lookup("__proto__", "x")).toBeUndefined()
  })

  it("the bundled table says when and where its prices were taken, and prices the README's models", () => {
    expect(Pricing.bundled.takenOn).toMatch(/^\d{4}-\d{2}-\d{2}$/)
    expect(Pricing.bundled.sources.length).toBeGreaterThan(0)
    for (const source of Pricing.bundled.sources) expect(source).toMatch(/^https:\/\//)
    const pricing = Pricing.make(Pricing.bundled)
    expect(pricing.lookup("openai", "gpt-4o")).toEqual({ input: 2.5, cacheRead: 1.25, output: 10 })
    expect(pricing.lookup("anthropic", "claude-sonnet-4-20250514")).toEqual({
      input: 3,
      cacheWrite: 3.75,
      cacheRead: 0.3,
      output: 15
    })
    expect(pricing.lookup("openrouter", "openai/gpt-4o")).toBeDefined()
    expect(pricing.lookup("local", "gpt-oss:120b")).toEqual({ input: 0, output: 0 })
  })
})

describe("the cost of a reply", () => {
  it.live("a known model: cached prompt tokens at the cache-read price, whole and streamed", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({
        kind: "reply",
        text: "Priced.",
        usage: { inputTokens: 1000, outputTokens: 200, cacheReadTokens: 400 }
      })
      const expected = dollars([600, 2.5], [400, 1.25], [200, 10])
      const [whole, streamed] = yield* both(OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-4o" }))
      expect(whole.usage.cost).toBeCloseTo(expected, 12)
      expect(whole.cost).toBe(whole.usage.cost)
      expect(streamed.usage.cost).toBeCloseTo(expected, 12)
      // the Finish event carries it
      const events = yield* Stream.runCollect(Llm.stream(hi)).pipe(
        Effect.provide(OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-4o" }))
      )
      const finish = Chunk.findLast(events, (event) => event._tag === "Finish")
      expect(finish._tag === "Some" && finish.value._tag === "Finish" ? finish.value.usage.cost : NaN).toBeCloseTo(
        expected,
        12
      )
    })))

  it.live("Anthropic: cache writes at the cache-write price, cache reads at the cache-read price", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({
        kind: "reply",
        text: "Cached.",
        usage: { inputTokens: 100, outputTokens: 50, cacheWriteTokens: 1000, cacheReadTokens: 2000 }
      })
      const [whole, streamed] = yield* both(
        Anthropic.layer({ baseUrl: server.url, apiKey: key, model: "claude-sonnet-4-20250514" })
      )
      const expected = dollars([100, 3], [1000, 3.75], [2000, 0.3], [50, 15])
      for (const reply of [whole, streamed]) {
        expect(reply.usage.inputTokens).toBe(3100)
        expect(reply.usage.cost).toBeCloseTo(expected, 12)
      }
    })))

  it.live("OpenRouter's reported cost wins over the table; on the user's own key the upstream cost is added", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = OpenRouter.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "openai/gpt-4o" })
      server.setDefault({
        kind: "reply",
        text: "Routed.",
        usage: { inputTokens: 1000, outputTokens: 100, cost: 0.0123 }
      })
      const [whole, streamed] = yield* both(layer)
      // the table would say 0.0035
      expect(whole.usage.cost).toBe(0.0123)
      expect(streamed.usage.cost).toBe(0.0123)
      server.setDefault({
        kind: "reply",
        text: "Routed.",
        usage: { inputTokens: 1000, outputTokens: 100, cost: 0.0005, upstreamCost: 0.01 }
      })
      const [byok, byokStreamed] = yield* both(layer)
      expect(byok.usage.cost).toBeCloseTo(0.0105, 12)
      expect(byokStreamed.usage.cost).toBeCloseTo(0.0105, 12)
    })))

  it.live("a local backend costs 0, even when its server reports no usage", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "Local.", usage: { inputTokens: 5000, outputTokens: 700 } })
      const layer = Local.layer({ baseUrl: server.url, model: "gpt-oss:20b" })
      const [whole, streamed] = yield* both(layer)
      expect(whole.usage.cost).toBe(0)
      expect(streamed.usage.cost).toBe(0)
      server.setDefault({
        kind: "raw",
        headers: { "content-type": "application/json" },
        chunks: [JSON.stringify({
          id: "x",
          object: "chat.completion",
          model: "gpt-oss:20b",
          choices: [{ index: 0, message: { role: "assistant", content: "No usage." }, finish_reason: "stop" }]
        })]
      })
      const quiet = yield* Llm.complete(hi).pipe(Effect.provide(layer))
      expect(quiet.usage.inputTokens).toBe(0)
      expect(quiet.usage.cost).toBe(0)
    })))

  it.live("a priced model whose server reports no usage has no cost: nothing is guessed", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({
        kind: "raw",
        headers: { "content-type": "application/json" },
        chunks: [JSON.stringify({
          id: "x",
          object: "chat.completion",
          model: "gpt-4o",
          choices: [{ index: 0, message: { role: "assistant", content: "No usage." }, finish_reason: "stop" }]
        })]
      })
      const result = yield* Llm.complete(hi).pipe(
        Effect.provide(OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-4o" }))
      )
      expect(result.usage.cost).toBeUndefined()
    })))

  it.live("an unknown model has no cost; the model the server names is priced first, then the one asked for", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const usage = { inputTokens: 1000, outputTokens: 100 }
      server.setDefault({ kind: "reply", text: "Who knows.", usage })
      const [unknown, unknownStreamed] = yield* both(
        OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-unknown" })
      )
      expect(unknown.usage.cost).toBeUndefined()
      expect(unknownStreamed.usage.cost).toBeUndefined()
      expect(unknown.cost).toBeUndefined()
      // asked for an alias the table does not know, answered by a model it does
      server.setDefault({ kind: "reply", text: "Aliased.", usage, model: "gpt-4o-mini" })
      const [aliased] = yield* both(OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "my-alias" }))
      expect(aliased.usage.cost).toBeCloseTo(dollars([1000, 0.15], [100, 0.6]), 12)
      // asked for a known model, answered under a snapshot name the table does not list
      server.setDefault({ kind: "reply", text: "Snapshot.", usage, model: "gpt-4o-2099-01-01" })
      const [snapshot] = yield* both(OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model: "gpt-4o" }))
      expect(snapshot.usage.cost).toBeCloseTo(dollars([1000, 2.5], [100, 10]), 12)
    })))

  it.live("Pricing.layer overrides and extends the bundled table; layerTable replaces it", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "Mine.", usage: { inputTokens: 1000, outputTokens: 100 } })
      const openai = (model: string) => OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: key, model })
      const prices = Pricing.layer({
        openai: { "ft:gpt-4o:acme": { input: 3.75, output: 15 }, "gpt-4o": { input: 1, output: 1 } }
      })
      const [custom] = yield* both(openai("ft:gpt-4o:acme").pipe(Layer.provide(prices)))
      expect(custom.usage.cost).toBeCloseTo(dollars([1000, 3.75], [100, 15]), 12)
      const [overridden] = yield* both(openai("gpt-4o").pipe(Layer.provide(prices)))
      expect(overridden.usage.cost).toBeCloseTo(dollars([1100, 1]), 12)
      // the rest of the bundled table stays
      const [kept] = yield* both(openai("gpt-4o-mini").pipe(Layer.provide(prices)))
      expect(kept.usage.cost).toBeCloseTo(dollars([1000, 0.15], [100, 0.6]), 12)
      const only = Pricing.layerTable({ takenOn: "2026-01-01", sources: [], prices: { openai: {} } })
      const [replaced] = yield* both(openai("gpt-4o").pipe(Layer.provide(only)))
      expect(replaced.usage.cost).toBeUndefined()
    })))

  it.live("a configuration file's pricing section prices its backends, over the bundled table", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({
        kind: "reply",
        text: "Configured.",
        usage: { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 200 }
      })
      const config = (model: string): LlmConfig.LlmConfigInput => ({
        llm: { backend: "openai", openai: { base_url: `${server.url}/v1`, model } },
        pricing: { openai: { "house-model": { input: 1, output: 2, cache_read: 0.5 } } }
      })
      const env = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", "sk-test-config"]])))
      const run = (model: string) =>
        both(LlmConfig.layerFrom(config(model)).pipe(Layer.orDie)).pipe(Effect.provide(env))
      const [house, houseStreamed] = yield* run("house-model")
      const expected = dollars([800, 1], [200, 0.5], [100, 2])
      expect(house.usage.cost).toBeCloseTo(expected, 12)
      expect(houseStreamed.usage.cost).toBeCloseTo(expected, 12)
      const [bundled] = yield* run("gpt-4o")
      expect(bundled.usage.cost).toBeCloseTo(dollars([800, 2.5], [200, 1.25], [100, 10]), 12)
    })))

  it.effect("a pricing section that is wrong is a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const attempt = (pricing: unknown) =>
        Effect.exit(LlmConfig.make({ llm: { backend: "local" }, pricing } as unknown as LlmConfig.LlmConfigInput))
      const message = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) ? String(exit.cause) : "succeeded"
      expect(message(yield* attempt({ openai: { m: { input: -1, output: 1 } } }))).toContain("pricing.openai.m.input")
      expect(message(yield* attempt({ openai: { m: { input: 1 } } }))).toContain("pricing.openai.m.output")
      expect(message(yield* attempt({ openai: { m: { input: 1, output: 1, cache_read: "cheap" } } }))).toContain(
        "pricing.openai.m.cache_read"
      )
      expect(message(yield* attempt({ openai: [] }))).toContain("pricing.openai")
      expect(message(yield* attempt({ openai: { m: { input: 1, output: 1, cache_reed: 1 } } }))).toContain(
        "pricing.openai.m.cache_reed: expected one of the settings input, output, cache_read, cache_write; did you mean cache_read?"
      )
      expect(message(yield* attempt({ openai: { m: { input: 1, output: 2 } } }))).toBe("succeeded")
    }))
})
