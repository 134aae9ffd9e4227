/**
 * Fallback chains over real HTTP: two fake provider servers (or a dead port)
 * behind one `Llm`.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { LlmError } from "../src/errors.js"
import { isProjectable } from "../src/internal/projection.js"
import * as Retry from "../src/internal/retry.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hello?")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

/** A local primary and an OpenAI secondary, each on its own fake server (or a dead port). */
const chain = (
  primaryUrl: string,
  secondaryUrl: string,
  options: Fallback.FallbackOptions = {},
  primary: ProviderOptions = {},
  secondary: ProviderOptions = {}
) =>
  Fallback.layer([
    Local.layer({ retry: { initialDelay: "1 millis", maxDelay: "2 millis" }, ...primary, baseUrl: primaryUrl }),
    OpenAi.layer({ retry: { initialDelay: "1 millis" }, ...secondary, baseUrl: `${secondaryUrl}/v1` })
  ], options).pipe(Layer.provide(NodeHttpClient.layerUndici))

const servers = Effect.all([FakeProvider.make, FakeProvider.make])

const text = <E, R>(stream: Stream.Stream<string, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.join(chunk, ""))

describe("Fallback", () => {
  it.live("a local server that is down falls through at once to the cloud", () =>
    Effect.scoped(Effect.gen(function*() {
      const cloud = yield* FakeProvider.make
      cloud.setDefault({ kind: "reply", text: "From the cloud." })
      // backoff this long would time the test out: refused connections must not wait
      const layer = chain("http://127.0.0.1:9", cloud.url, {}, { retry: { initialDelay: "20 seconds" } })
      const result = yield* Llm.complete(hi).pipe(Effect.provide(layer))
      expect(result.content).toBe("From the cloud.")
      expect(result.metadata.provider).toBe("openai")
      expect(result.metadata.fallbacks?.[0]?.provider).toBe("local")
      expect(result.metadata.fallbacks?.[0]?.error?._tag).toBe("LlmConnectionError")
      const streamed = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
      expect(streamed.content).toBe("From the cloud.")
      expect(streamed.metadata.fallbacks?.[0]?.provider).toBe("local")
    })))

  it.live("a primary answering 529 falls back after its own retries", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 529, type: "overloaded_error", message: "Overloaded" })
      secondary.setDefault({ kind: "reply", text: "Secondary here." })
      const result = yield* Llm.complete(hi).pipe(
        Effect.provide(chain(primary.url, secondary.url, {}, { retry: { maxRetries: 2, initialDelay: "1 millis" } }))
      )
      expect(result.content).toBe("Secondary here.")
      expect(primary.requests.length).toBe(3)
      expect(secondary.requests.length).toBe(1)
      expect(result.metadata.fallbacks?.[0]?.error?.status).toBe(529)
    })))

  it.live("a rate limit whose wait exceeds the cap falls through without waiting", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 429, headers: { "retry-after": "3600" } })
      secondary.setDefault({ kind: "reply", text: "No wait." })
      const result = yield* Llm.complete(hi).pipe(Effect.provide(chain(primary.url, secondary.url)))
      expect(result.content).toBe("No wait.")
      expect(primary.requests.length).toBe(1)
    })))

  it.live("a primary that stalls hits its idle timeout and the stream falls back", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "hang" })
      secondary.setDefault({ kind: "reply", text: "Quick answer." })
      const layer = chain(primary.url, secondary.url, {}, { ...noRetry, firstTokenTimeout: "150 millis" })
      const result = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
      expect(result.content).toBe("Quick answer.")
      expect(result.metadata.fallbacks?.[0]?.error?._tag).toBe("LlmTimeoutError")
      yield* Effect.promise(() => primary.waitForClientClose(1))
    })))

  it.live("a stream that dies after text fails with the partial text, without falling back or repeating", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "reply", text: "The first part, then", chunkSize: 5, delayMs: 5, resetAfterEvents: 3 })
      const seen: Array<string> = []
      const error = yield* Effect.flip(
        Stream.runForEach(Llm.streamText(hi), (delta) => Effect.sync(() => seen.push(delta))).pipe(
          Effect.provide(chain(primary.url, secondary.url))
        )
      )
      expect(error._tag).toBe("LlmConnectionError")
      expect(error.partialText).toBe(seen.join(""))
      expect(seen.join("")).toBe("The first ")
      expect(secondary.requests.length).toBe(0)
    })))

  it.live("continuation mode: the next backend continues from the delivered text, never repeating it", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "reply", text: "The first part, then", chunkSize: 5, delayMs: 5, resetAfterEvents: 3 })
      // the secondary repeats the prefix before continuing, as chat models often do
      secondary.setDefault({ kind: "reply", text: "The first part, and the rest." })
      const all = yield* text(Llm.streamText(hi)).pipe(
        Effect.provide(chain(primary.url, secondary.url, { continuation: true }))
      )
      expect(all).toBe("The first part, and the rest.")
      const sent =
        (secondary.requests[0]!.body as { messages: ReadonlyArray<{ role: string; content: string }> }).messages
      // sent trimmed: Anthropic refuses a prefill that ends in whitespace
      expect(sent[sent.length - 1]).toEqual({ role: "assistant", content: "The first" })

      secondary.setDefault({ kind: "reply", text: "part, continued." })
      const continued = yield* text(Llm.streamText(hi)).pipe(
        Effect.provide(chain(primary.url, secondary.url, { continuation: true }))
      )
      expect(continued).toBe("The first part, continued.")
    })))

  it.live("streamText gives exactly textDeltas(stream): falling through, continuing, failing with partial text", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      /** The texts a stream delivered, and how it ended. */
      const outcome = (texts: Stream.Stream<string, LlmError, Llm.Llm>, layer: Layer.Layer<Llm.Llm>) =>
        Effect.gen(function*() {
          const seen: Array<string> = []
          const exit = yield* Effect.either(
            Stream.runForEach(texts, (delta) => Effect.sync(() => seen.push(delta))).pipe(Effect.provide(layer))
          )
          return { seen, end: exit._tag === "Right" ? "done" : `${exit.left._tag}: ${exit.left.partialText}` }
        })
      const cases: ReadonlyArray<readonly [string, Layer.Layer<Llm.Llm>, string]> = [
        ["the primary is down", chain("http://127.0.0.1:9", secondary.url), "done"],
        ["continuation after a reset", chain(primary.url, secondary.url, { continuation: true }), "done"],
        ["a reset after text, no continuation", chain(primary.url, secondary.url), "LlmConnectionError: The first "]
      ]
      primary.setDefault({ kind: "reply", text: "The first part, then", chunkSize: 5, delayMs: 5, resetAfterEvents: 3 })
      secondary.setDefault({ kind: "reply", text: "The first part, and the rest.", chunkSize: 4, reasoning: "Hm." })
      for (const [name, layer, end] of cases) {
        const fused = yield* outcome(Llm.streamText(hi), layer)
        const staged = yield* outcome(LlmStream.textDeltas(Llm.stream(hi)), layer)
        expect({ name, ...fused }).toEqual({ name, ...staged })
        expect(fused.end).toBe(end)
        if (end === "done") expect(fused.seen.join("")).toBe("The first part, and the rest.")
      }
      expect(
        yield* Effect.map(Llm.Llm, (llm) => isProjectable(llm.stream(hi))).pipe(
          Effect.provide(chain(primary.url, secondary.url))
        )
      )
        .toBe(true)
    })))

  it.live("the consumer never runs with refused connections unretried, whichever backend answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "reply", text: "The first part, then", chunkSize: 5, delayMs: 5, resetAfterEvents: 3 })
      secondary.setDefault({ kind: "reply", text: "The first part, and the rest.", chunkSize: 4 })
      const layers = [
        chain("http://127.0.0.1:9", secondary.url),
        chain(primary.url, secondary.url, { continuation: true }),
        chain(secondary.url, primary.url)
      ]
      for (const layer of layers) {
        const seen: Array<boolean> = []
        yield* Stream.runForEach(
          Llm.streamText(hi),
          () =>
            Effect.map(FiberRef.get(Retry.retryRefusedConnections), (retried) => {
              seen.push(retried)
            })
        ).pipe(Effect.provide(layer))
        expect(seen.length).toBeGreaterThan(0)
        expect(seen.every((retried) => retried)).toBe(true)
        expect(yield* FiberRef.get(Retry.retryRefusedConnections)).toBe(true)
      }
    })))

  it.live("a consumer that stops early closes the answering backend's connection", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      secondary.setDefault({ kind: "reply", text: "one two three four five six seven", chunkSize: 4, delayMs: 20 })
      const layer = chain("http://127.0.0.1:9", secondary.url)
      const taken = yield* Stream.runCollect(Stream.take(Llm.streamText(hi), 2)).pipe(Effect.provide(layer))
      expect(Chunk.toReadonlyArray(taken)).toEqual(["one ", "two "])
      // the rest was still coming: the client, not the server, ended the request
      yield* Effect.promise(() => secondary.waitForClientClose(1))
      expect(primary.requests.length).toBe(0)
    })))

  it.live("with every breaker open, a call and a stream fail at once, naming the backends cooling down", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 503 })
      secondary.setDefault({ kind: "status", status: 503 })
      const layer = chain(primary.url, secondary.url, { circuitBreaker: { failureThreshold: 1 } }, noRetry, noRetry)
      const outcomes = yield* Effect.gen(function*() {
        const first = yield* Effect.flip(Llm.complete(hi))
        const called = yield* Effect.flip(Llm.complete(hi))
        const streamed = yield* Effect.flip(Stream.runDrain(Llm.streamText(hi)))
        return [first, called, streamed].map((error) => `${error._tag}: ${error.message}`)
      }).pipe(Effect.provide(layer))
      expect(outcomes[0]).toMatch(/^LlmProviderError: openai .*503/)
      expect(outcomes.slice(1)).toEqual([
        "LlmProviderError: no backend is available: local, openai are cooling down after repeated failures",
        "LlmProviderError: no backend is available: local, openai are cooling down after repeated failures"
      ])
      // the open breakers sent nothing more
      expect([primary.requests.length, secondary.requests.length]).toEqual([1, 1])
    })))

  it.live("an authentication error does not fall through unless asked to", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 401, message: "bad key" })
      secondary.setDefault({ kind: "reply", text: "fallback" })
      const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(chain(primary.url, secondary.url))))
      expect(error._tag).toBe("LlmAuthenticationError")
      expect(secondary.requests.length).toBe(0)
      const result = yield* Llm.complete(hi).pipe(
        Effect.provide(chain(primary.url, secondary.url, { fallThroughOnAnyError: true }))
      )
      expect(result.content).toBe("fallback")
    })))

  it.effect("the breaker opens after repeated failures, skips the backend, probes after the cooldown and closes", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 500 })
      secondary.setDefault({ kind: "reply", text: "secondary" })
      const layer = chain(
        primary.url,
        secondary.url,
        { circuitBreaker: { failureThreshold: 2, cooldown: "30 seconds" } },
        noRetry,
        noRetry
      )
      yield* Effect.gen(function*() {
        expect((yield* Llm.complete(hi)).content).toBe("secondary")
        expect((yield* Llm.complete(hi)).content).toBe("secondary")
        expect(primary.requests.length).toBe(2)
        // open: the primary costs nothing
        const skipped = yield* Llm.complete(hi)
        expect(primary.requests.length).toBe(2)
        expect(skipped.metadata.fallbacks).toEqual([{ provider: "local", skipped: true }])
        const streamed = yield* LlmStream.collect(Llm.stream(hi))
        expect(streamed.content).toBe("secondary")
        expect(primary.requests.length).toBe(2)
        // after the cooldown one probe call goes through; it succeeds and the breaker closes
        yield* TestClock.adjust("31 seconds")
        primary.setDefault({ kind: "reply", text: "primary is back" })
        expect((yield* Llm.complete(hi)).content).toBe("primary is back")
        expect((yield* Llm.complete(hi)).content).toBe("primary is back")
        expect(primary.requests.length).toBe(4)
      }).pipe(Effect.provide(layer))
    })))

  it.effect("a failed probe reopens the breaker for another cooldown", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 503 })
      secondary.setDefault({ kind: "reply", text: "secondary" })
      const layer = chain(
        primary.url,
        secondary.url,
        { circuitBreaker: { failureThreshold: 1, cooldown: "10 seconds" } },
        noRetry,
        noRetry
      )
      yield* Effect.gen(function*() {
        yield* Llm.complete(hi)
        yield* TestClock.adjust("11 seconds")
        yield* Llm.complete(hi) // the probe, fails
        expect(primary.requests.length).toBe(2)
        yield* Llm.complete(hi)
        expect(primary.requests.length).toBe(2)
      }).pipe(Effect.provide(layer))
    })))

  it.live("works across wire formats: a dead local server, then Anthropic", () =>
    Effect.scoped(Effect.gen(function*() {
      const cloud = yield* FakeProvider.make
      cloud.setDefault({ kind: "reply", text: "Claude here." })
      const layer = Fallback.layer([
        Local.layer({ baseUrl: "http://127.0.0.1:9" }),
        Anthropic.layer({ baseUrl: cloud.url })
      ]).pipe(Layer.provide(NodeHttpClient.layerUndici))
      const result = yield* text(Llm.streamText(hi)).pipe(Effect.provide(layer))
      expect(result).toBe("Claude here.")
      expect(cloud.requests[0]!.protocol).toBe("messages")
    })))
})

describe("Fallback probes", () => {
  it.effect("an open breaker asks Local.health before letting a call through", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* servers
      primary.setDefault({ kind: "status", status: 500 })
      secondary.setDefault({ kind: "reply", text: "secondary" })
      const probe = Local.health({ baseUrl: primary.url }).pipe(
        Effect.filterOrFail((health) => health.status === "ok", () => "loading")
      )
      const layer = Fallback.layer([
        { layer: Local.layer({ baseUrl: primary.url, ...noRetry }), probe },
        OpenAi.layer({ baseUrl: `${secondary.url}/v1`, ...noRetry })
      ], { circuitBreaker: { failureThreshold: 1, cooldown: "10 seconds" } }).pipe(
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const chatCalls = () => primary.requests.filter((request) => request.protocol === "chat").length
      yield* Effect.gen(function*() {
        yield* Llm.complete(hi)
        expect(chatCalls()).toBe(1)
        // still loading: the probe fails, no call is spent on the primary
        primary.setHealth(503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
        yield* TestClock.adjust("11 seconds")
        expect((yield* Llm.complete(hi)).content).toBe("secondary")
        expect(chatCalls()).toBe(1)
        expect(primary.requests.some((request) => request.path === "/health")).toBe(true)
        // ready: the probe passes and the call goes to the primary again
        primary.setHealth(200, { status: "ok" })
        primary.setDefault({ kind: "reply", text: "primary" })
        yield* TestClock.adjust("11 seconds")
        expect((yield* Llm.complete(hi)).content).toBe("primary")
        expect(chatCalls()).toBe(2)
      }).pipe(Effect.provide(layer))
    })))
})
