/**
 * Telemetry through the real OpenTelemetry SDK (installed with
 * `@effect/opentelemetry`, in-memory span exporter and metric reader), over
 * real loopback HTTP to the fake provider: the `chat {model}` span of a
 * whole call and of a stream (the whole stream, time to first chunk), a
 * failure's `error.type`, retry, fallback and breaker events, a tool loop's
 * `execute_tool` spans, the conversation id, content capture (off by
 * default), the metrics with their attributes and bucket boundaries, and no
 * span at all without a tracer.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import {
  ATTR_GEN_AI_CONVERSATION_ID,
  ATTR_GEN_AI_INPUT_MESSAGES,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_OUTPUT_MESSAGES,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MAX_TOKENS,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_REQUEST_STOP_SEQUENCES,
  ATTR_GEN_AI_REQUEST_TEMPERATURE,
  ATTR_GEN_AI_REQUEST_TOP_P,
  ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  ATTR_GEN_AI_RESPONSE_ID,
  ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
  ATTR_GEN_AI_TOOL_CALL_ARGUMENTS,
  ATTR_GEN_AI_TOOL_CALL_ID,
  ATTR_GEN_AI_TOOL_CALL_RESULT,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
  METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
  METRIC_GEN_AI_CLIENT_TOKEN_USAGE
} from "@opentelemetry/semantic-conventions/incubating"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { make as makeContext } from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import * as HttpTransport from "../src/HttpTransport.js"
import { nativeTracer } from "../src/internal/tracing.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import * as Telemetry from "../src/Telemetry.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { childrenOf, histogramOf, matching, millisOf, type Sdk, withSdk } from "./support/otel.js"

const hi = [Message.system("Be brief."), Message.user("Hi")]
const fast = { retry: { maxRetries: 2, initialDelay: "5 millis", maxDelay: "10 millis" } } as const
const key = Redacted.make("sk-test-telemetry")

/** The conventions' bucket boundaries. */
const durationBuckets = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
const tokenBuckets = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]

/** Runs `f` with a fake server, an SDK installed, and `layer` of the server's URL provided. */
const scenario = <A, E>(
  layer: (url: string) => Layer.Layer<Llm.Llm>,
  f: (server: FakeProvider.FakeProvider, sdk: Sdk) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* withSdk((sdk) => f(server, sdk).pipe(Effect.provide(layer(server.url))))
  }))

const openAi = (url: string) => OpenAi.layer({ ...fast, baseUrl: `${url}/v1`, model: "gpt-4o", apiKey: key })
const anthropic = (url: string) => Anthropic.layer({ ...fast, baseUrl: url, model: "claude-x", apiKey: key })

const named = (spans: ReadonlyArray<ReadableSpan>, name: string) => spans.filter((span) => span.name === name)

/** The span events named `effect_llm.*` (Effect also records log lines as events). */
const ownEvents = (span: ReadableSpan) =>
  span.events.filter((event) => event.name.startsWith("effect_llm.")).map((event) => ({
    name: event.name,
    attributes: event.attributes
  }))

/** Every attribute key of every span. */
const keysOf = (spans: ReadonlyArray<ReadableSpan>) => new Set(spans.flatMap((span) => Object.keys(span.attributes)))

describe("the chat span of a whole call", () => {
  it.live("is a client span named for the operation and model, with the request, the response and the usage", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({
          kind: "reply",
          text: "Hello!",
          id: "chatcmpl-42",
          model: "gpt-4o-2024-08-06",
          usage: { inputTokens: 12, outputTokens: 3, cacheReadTokens: 8 }
        })
        yield* Llm.complete(hi, { maxTokens: 100, temperature: 0.2, topP: 0.9, stop: ["\n\n"] })
        const [chat] = named(sdk.spans(), "chat gpt-4o")
        expect(chat).toBeDefined()
        expect(chat!.kind).toBe(SpanKind.CLIENT)
        expect(chat!.status.code).toBe(SpanStatusCode.OK)
        const port = Number(new URL(server.url).port)
        expect(chat!.attributes).toEqual({
          [ATTR_GEN_AI_OPERATION_NAME]: "chat",
          [ATTR_GEN_AI_PROVIDER_NAME]: "openai",
          [ATTR_GEN_AI_REQUEST_MODEL]: "gpt-4o",
          [ATTR_SERVER_ADDRESS]: "127.0.0.1",
          [ATTR_SERVER_PORT]: port,
          [ATTR_GEN_AI_REQUEST_MAX_TOKENS]: 100,
          [ATTR_GEN_AI_REQUEST_TEMPERATURE]: 0.2,
          [ATTR_GEN_AI_REQUEST_TOP_P]: 0.9,
          [ATTR_GEN_AI_REQUEST_STOP_SEQUENCES]: ["\n\n"],
          [ATTR_GEN_AI_RESPONSE_MODEL]: "gpt-4o-2024-08-06",
          [ATTR_GEN_AI_RESPONSE_ID]: "chatcmpl-42",
          [ATTR_GEN_AI_RESPONSE_FINISH_REASONS]: ["stop"],
          [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: 12,
          [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: 3,
          [ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]: 8,
          // the fake server reports OpenAI's reasoning_tokens, 0
          "gen_ai.usage.reasoning.output_tokens": 0
        })
        // the transport's request span is its child, naming the server as the conventions do
        const [http] = childrenOf(sdk.spans(), chat!)
        expect(http!.name).toBe("http.client POST")
        expect([http!.attributes[ATTR_SERVER_ADDRESS], http!.attributes[ATTR_SERVER_PORT]]).toEqual(["127.0.0.1", port])
      })))

  it.live("Anthropic: the provider name, and the cache reads and writes", () =>
    scenario(anthropic, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({
          kind: "reply",
          text: "Hi.",
          usage: { inputTokens: 5, outputTokens: 2, cacheReadTokens: 100, cacheWriteTokens: 40 }
        })
        yield* Llm.complete(hi)
        const [chat] = named(sdk.spans(), "chat claude-x")
        expect(chat!.attributes[ATTR_GEN_AI_PROVIDER_NAME]).toBe("anthropic")
        // input tokens include the cached ones, as the conventions ask
        expect(chat!.attributes[ATTR_GEN_AI_USAGE_INPUT_TOKENS]).toBe(145)
        expect(chat!.attributes["gen_ai.usage.cache_read.input_tokens"]).toBe(100)
        expect(chat!.attributes["gen_ai.usage.cache_write.input_tokens"]).toBe(40)
        expect(keysOf(sdk.spans()).has("gen_ai.system")).toBe(false)
      })))

  it.live("a warm-up is a chat span marked effect_llm.warm", () =>
    scenario(anthropic, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "" })
        const llm = yield* Llm.Llm
        yield* llm.warm!(hi)
        yield* llm.complete(hi)
        expect(named(sdk.spans(), "chat claude-x").map((span) => span.attributes["effect_llm.warm"])).toEqual([
          true,
          undefined
        ])
      })))

  it.live("a failure: error.type is the error's tag, the status an error", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "status", status: 401, message: "Incorrect API key provided." })
        const error = yield* Effect.flip(Llm.complete(hi))
        expect(error._tag).toBe("LlmAuthenticationError")
        const [chat] = named(sdk.spans(), "chat gpt-4o")
        expect(chat!.attributes["error.type"]).toBe("LlmAuthenticationError")
        expect(chat!.status.code).toBe(SpanStatusCode.ERROR)
        expect(chat!.attributes[ATTR_GEN_AI_RESPONSE_MODEL]).toBeUndefined()
      })))

  it.live("each retry is an effect_llm.retry event: the attempt, the error, the delay", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.enqueue(
          { kind: "status", status: 503, message: "overloaded" },
          { kind: "status", status: 429, message: "slow down", headers: { "retry-after-ms": "7" } },
          { kind: "reply", text: "third time" }
        )
        expect((yield* Llm.complete(hi)).content).toBe("third time")
        const [chat] = named(sdk.spans(), "chat gpt-4o")
        const retries = ownEvents(chat!)
        expect(retries.map((event) => [event.name, event.attributes?.["effect_llm.retry.attempt"]])).toEqual([
          ["effect_llm.retry", 1],
          ["effect_llm.retry", 2]
        ])
        expect(retries.map((event) => event.attributes?.["error.type"])).toEqual([
          "LlmProviderError",
          "LlmRateLimitError"
        ])
        expect(String(retries[0]!.attributes?.["error.message"])).toContain("overloaded")
        // the server's Retry-After replaces the backoff
        expect(retries[1]!.attributes?.["effect_llm.retry.delay"]).toBe(0.007)
        expect(retries[0]!.attributes?.["effect_llm.retry.delay"]).toBeGreaterThanOrEqual(0)
        // three requests, each its own child span
        expect(childrenOf(sdk.spans(), chat!).length).toBe(3)
      })))
})

describe("the chat span of a stream", () => {
  it.live("covers the whole stream, records the time to first chunk, and the reply at the end", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({
          kind: "reply",
          text: "one two three four five",
          chunkSize: 4,
          delayMs: 25,
          usage: { inputTokens: 9, outputTokens: 5 }
        })
        const seen: Array<number> = []
        yield* Stream.runForEach(Llm.stream(hi), () => Effect.sync(() => void seen.push(Date.now())))
        const [chat] = named(sdk.spans(), "chat gpt-4o")
        expect(chat!.attributes["gen_ai.request.stream"]).toBe(true)
        const start = millisOf(chat!.startTime)
        const end = millisOf(chat!.endTime)
        // from before the first event to after the last one the consumer saw
        expect(start).toBeLessThanOrEqual(seen[0]!)
        expect(end).toBeGreaterThanOrEqual(seen.at(-1)! - 1)
        expect(end - start).toBeGreaterThan(100)
        const firstChunk = chat!.attributes[ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] as number
        expect(firstChunk).toBeGreaterThan(0.02)
        expect(firstChunk * 1000).toBeLessThan(end - start)
        expect(chat!.attributes[ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(5)
        expect(chat!.attributes[ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(["stop"])
        expect(chat!.status.code).toBe(SpanStatusCode.OK)
      })))

  it.live("retried before its first content: one span, an effect_llm.retry event per retry, an attempt span each", () =>
    scenario(anthropic, (server, sdk) =>
      Effect.gen(function*() {
        server.enqueue(
          { kind: "status", status: 529, type: "overloaded_error", message: "Overloaded" },
          {
            kind: "reply",
            text: "x",
            inBandError: { afterEvents: 0, type: "overloaded_error", message: "Overloaded" }
          },
          { kind: "reply", text: "at last", chunkSize: 3 }
        )
        expect((yield* LlmStream.collect(Llm.stream(hi))).content).toBe("at last")
        const chats = named(sdk.spans(), "chat claude-x")
        expect(chats.length).toBe(1)
        expect(
          ownEvents(chats[0]!).map((
            event
          ) => [event.attributes?.["effect_llm.retry.attempt"], event.attributes?.["error.type"]])
        )
          .toEqual([[1, "LlmProviderError"], [2, "LlmProviderError"]])
        expect(childrenOf(sdk.spans(), chats[0]!).map((span) => span.name)).toEqual([
          "http.client POST",
          "http.client POST",
          "http.client POST"
        ])
      })))

  it.live("a consumer that stops (barge-in) ends it when it stops, with no error.type", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "a b c d e f g h i j", chunkSize: 2, delayMs: 30 })
        const fiber = yield* Effect.fork(Stream.runDrain(Llm.stream(hi)))
        yield* Effect.sleep("80 millis")
        yield* Fiber.interrupt(fiber)
        const [chat] = named(sdk.spans(), "chat gpt-4o")
        expect(chat!.attributes["status.interrupted"]).toBe(true)
        expect(chat!.attributes["error.type"]).toBeUndefined()
        expect(chat!.attributes[ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]).toBeGreaterThan(0)
      })))
})

describe("fallback", () => {
  const chain = (primary: string, secondary: string, breaker?: Fallback.CircuitBreakerOptions) =>
    Fallback.layer([
      Local.layer({ ...fast, retry: { maxRetries: 0 }, baseUrl: primary, model: "local-model" }),
      Anthropic.layer({ ...fast, baseUrl: secondary, model: "claude-x", apiKey: key })
    ], breaker === undefined ? {} : { circuitBreaker: breaker })

  it.live("the chain's span holds each backend's chat span and an event for the step, with its reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 503, message: "down" })
      secondary.setDefault({ kind: "reply", text: "from the cloud" })
      yield* withSdk((sdk) =>
        Effect.gen(function*() {
          yield* Llm.complete(hi)
          yield* LlmStream.collect(Llm.stream(hi))
          const chains = named(sdk.spans(), "effect_llm.fallback")
          expect(chains.length).toBe(2)
          for (const span of chains) {
            expect(span.attributes["effect_llm.fallback.backends"]).toEqual(["local", "anthropic"])
            const [local, cloud] = childrenOf(sdk.spans(), span)
            expect([local!.name, cloud!.name]).toEqual(["chat local-model", "chat claude-x"])
            // the failed backend's span ends with its failure, before the next backend is asked
            expect(millisOf(local!.endTime)).toBeLessThanOrEqual(millisOf(cloud!.startTime))
            expect(local!.attributes["error.type"]).toBe("LlmProviderError")
            expect(ownEvents(span)).toEqual([{
              name: "effect_llm.fallback",
              attributes: {
                "effect_llm.fallback.from": "local",
                "effect_llm.fallback.to": "anthropic",
                "effect_llm.fallback.reason": "LlmProviderError"
              }
            }])
          }
        }).pipe(Effect.provide(chain(primary.url, secondary.url)))
      )
    })))

  it.live("breaker changes are events (closed to open, open to half-open to closed) and set the state gauge", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 503, message: "down" })
      secondary.setDefault({ kind: "reply", text: "cloud" })
      yield* withSdk((sdk) =>
        Effect.gen(function*() {
          const gauge = Effect.map(sdk.points("effect_llm.breaker.state"), (points) =>
            matching(points, { "effect_llm.backend": "local", "effect_llm.backend.index": "0" }).map((point) =>
              point.value
            ))
          expect(yield* gauge).toEqual([0])
          yield* Llm.complete(hi) // opens the local breaker
          expect(yield* gauge).toEqual([2])
          yield* Llm.complete(hi) // skipped: the breaker is open
          yield* Effect.sleep("80 millis")
          primary.setDefault({ kind: "reply", text: "local again" })
          expect((yield* Llm.complete(hi)).content).toBe("local again") // the trial closes it
          expect(yield* gauge).toEqual([0])
          const [opened, skipped, trial] = named(sdk.spans(), "effect_llm.fallback")
          const breakerEvents = (span: ReadableSpan) =>
            ownEvents(span).filter((event) =>
              event.name === "effect_llm.breaker"
            ).map((event) => [
              event.attributes?.["effect_llm.backend"],
              event.attributes?.["effect_llm.breaker.from"],
              event.attributes?.["effect_llm.breaker.to"]
            ])
          expect(breakerEvents(opened!)).toEqual([["local", "closed", "open"]])
          expect(breakerEvents(skipped!)).toEqual([])
          expect(ownEvents(skipped!).map((event) => event.attributes?.["effect_llm.fallback.reason"])).toEqual([
            "breaker_open"
          ])
          expect(breakerEvents(trial!)).toEqual([["local", "open", "half_open"], ["local", "half_open", "closed"]])
        }).pipe(Effect.provide(chain(primary.url, secondary.url, { failureThreshold: 1, cooldown: "50 millis" })))
      )
    })))
})

describe("the tool loop", () => {
  const weather = Tool.make("get_weather", {
    description: "The weather in a city",
    parameters: Schema.Struct({ city: Schema.String }),
    handler: ({ city }) => Effect.succeed({ city, celsius: 18 })
  })
  const kit = Toolkit.make(weather)
  const script = (server: FakeProvider.FakeProvider) =>
    server.enqueue(
      { kind: "reply", toolCalls: [{ id: "call_7", name: "get_weather", arguments: { city: "Lisbon" } }] },
      { kind: "reply", text: "18°C in Lisbon." }
    )

  it.live("each tool call is an execute_tool span, a child of the turn's span beside the chat spans", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        script(server)
        yield* Toolkit.run(hi, kit).pipe(Effect.withSpan("turn"))
        const spans = sdk.spans()
        const [turn] = named(spans, "turn")
        expect(childrenOf(spans, turn!).map((span) => span.name)).toEqual([
          "chat gpt-4o",
          "execute_tool get_weather",
          "chat gpt-4o"
        ])
        const [tool] = named(spans, "execute_tool get_weather")
        expect(tool!.kind).toBe(SpanKind.INTERNAL)
        expect(tool!.attributes).toEqual({
          [ATTR_GEN_AI_OPERATION_NAME]: "execute_tool",
          [ATTR_GEN_AI_TOOL_NAME]: "get_weather",
          [ATTR_GEN_AI_TOOL_CALL_ID]: "call_7",
          "gen_ai.tool.type": "function",
          "gen_ai.tool.description": "The weather in a city"
        })
        const [first] = named(spans, "chat gpt-4o")
        expect(first!.attributes[ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(["tool_calls"])
      })))

  it.live("a failing tool: error.type is the reason, and its message (which may quote arguments) is not recorded", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.enqueue(
          {
            kind: "reply",
            toolCalls: [{ id: "call_8", name: "get_weather", arguments: { city: { street: "Rua-Secreta-9" } } }]
          },
          { kind: "reply", text: "Sorry." }
        )
        yield* Toolkit.run(hi, kit)
        const [tool] = named(sdk.spans(), "execute_tool get_weather")
        expect(tool!.attributes["error.type"]).toBe("invalid_arguments")
        expect(tool!.status.code).toBe(SpanStatusCode.ERROR)
        expect(tool!.status.message).toBe("tool \"get_weather\" failed (invalid_arguments)")
        // a value nothing else holds (a number could be in a timestamp or a stack's line numbers)
        expect(JSON.stringify([tool!.events, tool!.attributes, tool!.status])).not.toContain("Rua-Secreta")
      })))

  it.live("with content capture, the tool's arguments and result", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        script(server)
        yield* Telemetry.withContentCapture(Toolkit.run(hi, kit))
        const [tool] = named(sdk.spans(), "execute_tool get_weather")
        expect(JSON.parse(String(tool!.attributes[ATTR_GEN_AI_TOOL_CALL_ARGUMENTS]))).toEqual({ city: "Lisbon" })
        expect(JSON.parse(String(tool!.attributes[ATTR_GEN_AI_TOOL_CALL_RESULT]))).toEqual({
          city: "Lisbon",
          celsius: 18
        })
      })))
})

describe("the conversation id", () => {
  it.live("a conversation's calls carry its id, given or generated", () =>
    scenario(openAi, (server, sdk) =>
      Effect.scoped(Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "ok" })
        const given = yield* Conversation.make(makeContext(), { id: "conv-given" })
        expect(given.id).toBe("conv-given")
        yield* given.send("one")
        yield* Stream.runDrain(given.sendStream("two"))
        const generated = yield* Conversation.make(makeContext())
        expect(generated.id).toMatch(/^[0-9a-f-]{36}$/)
        yield* generated.send("three")
        yield* Llm.complete(hi)
        expect(named(sdk.spans(), "chat gpt-4o").map((span) => span.attributes[ATTR_GEN_AI_CONVERSATION_ID])).toEqual([
          "conv-given",
          "conv-given",
          generated.id,
          undefined
        ])
      }))))
})

describe("content capture", () => {
  it.live("off by default: no message content in any span", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "A secret answer" })
        yield* Llm.complete([Message.user("A private question")])
        yield* LlmStream.collect(Llm.stream([Message.user("A private question")]))
        const spans = sdk.spans()
        expect(keysOf(spans).has(ATTR_GEN_AI_INPUT_MESSAGES)).toBe(false)
        expect(keysOf(spans).has(ATTR_GEN_AI_OUTPUT_MESSAGES)).toBe(false)
        const text = JSON.stringify(spans.map((span) => [span.attributes, span.events, span.status]))
        expect(text).not.toContain("private question")
        expect(text).not.toContain("secret answer")
      })))

  it.live("on: the input and output messages in the conventions' format, whole calls and streams", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "Paris.", chunkSize: 2 })
        const history = [
          Message.system("Be brief."),
          Message.user("Weather?"),
          Message.assistant("", [{ id: "c1", name: "get_weather", arguments: { city: "Paris" } }]),
          Message.tool({ toolCallId: "c1", name: "get_weather", content: "rain" }),
          Message.user("Capital of France?")
        ]
        yield* Llm.complete(history).pipe(Effect.provide(Telemetry.layerContentCapture))
        yield* LlmStream.collect(Llm.stream(history)).pipe(Telemetry.withContentCapture)
        const chats = named(sdk.spans(), "chat gpt-4o")
        expect(chats.length).toBe(2)
        for (const chat of chats) {
          expect(JSON.parse(String(chat.attributes[ATTR_GEN_AI_INPUT_MESSAGES]))).toEqual([
            { role: "system", parts: [{ type: "text", content: "Be brief." }] },
            { role: "user", parts: [{ type: "text", content: "Weather?" }] },
            {
              role: "assistant",
              parts: [{ type: "tool_call", id: "c1", name: "get_weather", arguments: { city: "Paris" } }]
            },
            { role: "tool", parts: [{ type: "tool_call_response", id: "c1", result: "rain" }] },
            { role: "user", parts: [{ type: "text", content: "Capital of France?" }] }
          ])
          expect(JSON.parse(String(chat.attributes[ATTR_GEN_AI_OUTPUT_MESSAGES]))).toEqual([
            { role: "assistant", parts: [{ type: "text", content: "Paris." }], finish_reason: "stop" }
          ])
        }
      })))
})

describe("metrics", () => {
  it.live("duration and token usage: the conventions' boundaries and attributes, per call", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "ok", usage: { inputTokens: 20, outputTokens: 300 } })
        yield* Llm.complete(hi, { model: "metrics-a" })
        yield* Llm.complete(hi, { model: "metrics-a" })
        const port = Number(new URL(server.url).port)
        const base = {
          [ATTR_GEN_AI_OPERATION_NAME]: "chat",
          [ATTR_GEN_AI_PROVIDER_NAME]: "openai",
          [ATTR_GEN_AI_REQUEST_MODEL]: "metrics-a",
          [ATTR_GEN_AI_RESPONSE_MODEL]: "metrics-a",
          [ATTR_SERVER_ADDRESS]: "127.0.0.1",
          [ATTR_SERVER_PORT]: String(port)
        }
        const durations = matching(yield* sdk.points(METRIC_GEN_AI_CLIENT_OPERATION_DURATION), base)
        expect(durations.length).toBe(1)
        expect(durations[0]!.attributes).toEqual(base)
        const duration = histogramOf(durations[0])
        expect(duration.buckets.boundaries).toEqual(durationBuckets)
        expect(duration.count).toBe(2)
        expect(duration.sum).toBeGreaterThan(0)
        expect(duration.sum).toBeLessThan(10)

        const tokens = yield* sdk.points(METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
        const input = histogramOf(matching(tokens, { ...base, "gen_ai.token.type": "input" })[0])
        const output = histogramOf(matching(tokens, { ...base, "gen_ai.token.type": "output" })[0])
        expect(input.buckets.boundaries).toEqual(tokenBuckets)
        expect([input.count, input.sum, output.count, output.sum]).toEqual([2, 40, 2, 600])
        // 20 tokens fall in (16, 64], 300 in (256, 1024]
        expect(input.buckets.counts[3]).toBe(2)
        expect(output.buckets.counts[5]).toBe(2)
        // a whole call has no time to first chunk
        expect(matching(yield* sdk.points(METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK), base)).toEqual([])
      })))

  it.live("an interrupted complete is recorded as interrupted: its span ended without error.type, its call counted", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "late", firstEventDelayMs: 2_000 })
        const fiber = yield* Effect.fork(Llm.complete(hi, { model: "metrics-interrupted" }))
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(fiber)
        const [chat] = named(sdk.spans(), "chat metrics-interrupted")
        expect(chat!.attributes["status.interrupted"]).toBe(true)
        expect(chat!.attributes["error.type"]).toBeUndefined()
        const calls = matching(yield* sdk.points("effect_llm.client.calls"), {
          [ATTR_GEN_AI_REQUEST_MODEL]: "metrics-interrupted"
        })
        expect(calls.map((point) => [point.attributes["effect_llm.outcome"], point.value])).toEqual([[
          "interrupted",
          1
        ]])
      })))

  it.live("a stream's time to first chunk; failures by error.type; calls by outcome; retries", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "one two", chunkSize: 3, delayMs: 20 })
        yield* LlmStream.collect(Llm.stream(hi, { model: "metrics-b" }))
        server.enqueue({ kind: "status", status: 503 }, { kind: "status", status: 503 }, {
          kind: "status",
          status: 503
        })
        yield* Effect.flip(Llm.complete(hi, { model: "metrics-b" }))
        server.setDefault({ kind: "reply", text: "a b c d e f g h", chunkSize: 2, delayMs: 40 })
        const fiber = yield* Effect.fork(Stream.runDrain(Llm.stream(hi, { model: "metrics-b" })))
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(fiber)

        const model = { [ATTR_GEN_AI_REQUEST_MODEL]: "metrics-b" }
        const firstChunk = matching(yield* sdk.points(METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK), model)
        expect(firstChunk.map((point) => histogramOf(point).count).reduce((a, b) => a + b, 0)).toBe(2)
        expect(histogramOf(firstChunk[0]).buckets.boundaries).toEqual(durationBuckets)
        const failed = matching(yield* sdk.points(METRIC_GEN_AI_CLIENT_OPERATION_DURATION), {
          ...model,
          "error.type": "LlmProviderError"
        })
        expect(histogramOf(failed[0]).count).toBe(1)
        const calls = matching(yield* sdk.points("effect_llm.client.calls"), model)
        expect(Object.fromEntries(calls.map((point) => [point.attributes["effect_llm.outcome"], point.value]))).toEqual(
          {
            success: 1,
            error: 1,
            interrupted: 1
          }
        )
        expect(matching(calls, { "effect_llm.outcome": "error" })[0]!.attributes["error.type"]).toBe(
          "LlmProviderError"
        )
        const retries = matching(yield* sdk.points("effect_llm.client.retries"), model)
        expect(retries.map((point) => [point.attributes["error.type"], point.value])).toEqual([["LlmProviderError", 2]])
      })))

  it.live("the fiber's own metric tags are added", () =>
    scenario(openAi, (server, sdk) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "reply", text: "ok" })
        yield* Llm.complete(hi, { model: "metrics-c" }).pipe(Effect.tagMetrics("tenant", "t1"))
        const calls = matching(yield* sdk.points("effect_llm.client.calls"), {
          [ATTR_GEN_AI_REQUEST_MODEL]: "metrics-c"
        })
        expect(calls.map((point) => [point.attributes["tenant"], point.value])).toEqual([["t1", 1]])
      })))

  it.live("fallback steps by from, to and reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 500, message: "boom" })
      secondary.setDefault({ kind: "reply", text: "ok" })
      const layer = Fallback.layer([
        OpenAi.layer({ retry: { maxRetries: 0 }, baseUrl: `${primary.url}/v1`, model: "gpt-4o", apiKey: key }),
        Local.layer({ baseUrl: secondary.url, model: "steps-model" })
      ])
      yield* withSdk((sdk) =>
        Effect.gen(function*() {
          const before = matching(yield* sdk.points("effect_llm.fallback.steps"), {
            "effect_llm.fallback.from": "openai",
            "effect_llm.fallback.to": "local"
          }).map((point) => point.value as number)
          yield* Llm.complete(hi)
          const after = matching(yield* sdk.points("effect_llm.fallback.steps"), {
            "effect_llm.fallback.from": "openai",
            "effect_llm.fallback.to": "local",
            "effect_llm.fallback.reason": "LlmProviderError"
          }).map((point) => point.value as number)
          expect(after[0]).toBe((before[0] ?? 0) + 1)
        }).pipe(Effect.provide(layer))
      )
    })))
})

/** Runs an effect with the name of every span Effect's built-in tracer is asked for pushed to `made`. */
const nativeSpansNamed = (made: Array<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const span = nativeTracer.span
    ;(nativeTracer as { span: typeof span }).span = (name, ...rest) => {
      made.push(name)
      return span(name, ...rest)
    }
    return Effect.ensuring(effect, Effect.sync(() => void ((nativeTracer as { span: typeof span }).span = span)))
  })

describe("without a tracer", () => {
  it.live("no span is made, by the calls, streams, retries, fallback or tools", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 503 })
      secondary.setDefault({ kind: "reply", text: "ok" })
      const made: Array<string> = []
      const kit = Toolkit.make(Tool.make("noop", {
        description: "Does nothing",
        parameters: Schema.Struct({}),
        handler: () => Effect.succeed("done")
      }))
      yield* Effect.gen(function*() {
        yield* Llm.complete(hi)
        yield* LlmStream.collect(Llm.stream(hi))
        secondary.enqueue({ kind: "reply", toolCalls: [{ id: "t", name: "noop", arguments: {} }] })
        yield* Toolkit.run(hi, kit)
      }).pipe(
        Effect.provide(Fallback.layer([
          OpenAi.layer({ ...fast, baseUrl: `${primary.url}/v1`, model: "gpt-4o", apiKey: key }),
          Local.layer({ ...fast, baseUrl: secondary.url, model: "m" })
        ])),
        nativeSpansNamed(made)
      )
      expect(secondary.requests.length).toBe(4)
      expect(made).toEqual([])
    })))

  it.live("no span is made through the HttpClient transport either (the platform's http.client span)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "ok" })
      const made: Array<string> = []
      const layer = Local.layer({ ...fast, baseUrl: server.url, model: "m" }).pipe(
        Layer.provide(HttpTransport.layerHttpClient),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const replies = yield* Effect.all([
        Effect.map(Llm.complete(hi), (result) => result.content),
        Effect.map(LlmStream.collect(Llm.stream(hi)), (result) => result.content)
      ]).pipe(
        Effect.provide(layer),
        nativeSpansNamed(made)
      )
      expect(replies).toEqual(["ok", "ok"])
      expect(server.requests.length).toBe(2)
      expect(made).toEqual([])
    })))
})
