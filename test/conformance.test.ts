/**
 * One suite, every backend: the same scenarios run against each provider
 * layer over real loopback HTTP to the fake provider server.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type { LlmError } from "../src/errors.js"
import { isProjectable } from "../src/internal/projection.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import { allBackends as backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const weather = Message.toolDefinition({
  name: "get_weather",
  description: "Current weather",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
})
const clock = Message.toolDefinition({
  name: "get_time",
  description: "Current time",
  parameters: { type: "object", properties: { city: { type: "string" } } }
})

const question = [Message.system("Be brief."), Message.user("Weather and time in Oslo?")]

/** The request body a protocol must carry for a replayed two-call tool round-trip. */
const replayedToolTurn = {
  chat: (emptyContent: null | "") => [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Weather and time in Oslo?" },
    {
      role: "assistant",
      content: emptyContent,
      tool_calls: [
        { id: "call_w", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } },
        { id: "call_t", type: "function", function: { name: "get_time", arguments: "{\"city\":\"Oslo\"}" } }
      ]
    },
    { role: "tool", tool_call_id: "call_w", content: "4°C, rain" },
    { role: "tool", tool_call_id: "call_t", content: "14:05" }
  ],
  messages: () => [
    { role: "user", content: [{ type: "text", text: "Weather and time in Oslo?" }] },
    {
      role: "assistant",
      content: [
        { type: "tool_use", id: "call_w", name: "get_weather", input: { city: "Oslo" } },
        // the last block before the newest user turn: the cache breakpoint placed by default
        {
          type: "tool_use",
          id: "call_t",
          name: "get_time",
          input: { city: "Oslo" },
          cache_control: { type: "ephemeral" }
        }
      ]
    },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "call_w", content: "4°C, rain" },
        { type: "tool_result", tool_use_id: "call_t", content: "14:05" }
      ]
    }
  ]
}

const statusCases: ReadonlyArray<readonly [number, LlmError["_tag"]]> = [
  [400, "LlmInvalidRequestError"],
  [401, "LlmAuthenticationError"],
  [403, "LlmAuthenticationError"],
  [404, "LlmInvalidRequestError"],
  [413, "LlmInvalidRequestError"],
  [422, "LlmInvalidRequestError"],
  [429, "LlmRateLimitError"],
  [500, "LlmProviderError"],
  [502, "LlmProviderError"],
  [503, "LlmProviderError"],
  [504, "LlmProviderError"],
  [529, "LlmProviderError"]
]

for (const backend of backends) {
  describe(`conformance: ${backend.name}`, () => {
    /** Runs `effect` against a fresh fake server with this backend's layer. */
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>,
      options?: ProviderOptions
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(Effect.provide(backend.layer(server.url, options)))
      }))

    const lastBody = (server: FakeProvider.FakeProvider) =>
      server.requests[server.requests.length - 1]!.body as Record<string, unknown>

    it.live("completes a plain request and reports usage and metadata", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "Hello there!", usage: { inputTokens: 12, outputTokens: 3 } })
          const result = yield* Llm.complete([Message.user("Hi")], { temperature: 0.3, maxTokens: 64 })
          expect(result.content).toBe("Hello there!")
          expect(result.finishReason).toBe("stop")
          expect(result.toolCalls).toEqual([])
          expect(result.usage.inputTokens).toBe(12)
          expect(result.usage.outputTokens).toBe(3)
          expect(result.tokensUsed).toBe(15)
          expect(result.metadata.provider).toBe(backend.provider)
          expect(result.metadata.attempts).toBe(1)
          expect(result.metadata.requestId).toMatch(/^req_/)
          const request = server.requests[0]!
          expect(request.protocol).toBe(backend.protocol)
          expect(request.headers[backend.authHeader[0]]).toBe(backend.authHeader[1])
          expect(lastBody(server)).toMatchObject({ temperature: 0.3 })
          expect(lastBody(server).stream).toBeUndefined()
        })
      ))

    it.live("streams text, and collect gives what complete gives", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const reply = {
            kind: "reply",
            text: "The quick brown fox jumps.",
            chunkSize: 3,
            reasoning: "Think."
          } as const
          server.enqueue(reply, reply)
          const deltas = yield* Stream.runCollect(Llm.streamText([Message.user("Go")]))
          expect(Chunk.toReadonlyArray(deltas).join("")).toBe("The quick brown fox jumps.")
          expect(Chunk.size(deltas)).toBeGreaterThan(3)
          const complete = yield* Llm.complete([Message.user("Go")])
          server.enqueue(reply)
          const collected = yield* LlmStream.collect(Llm.stream([Message.user("Go")]))
          const comparable = (r: Llm.CompletionResult) => ({
            content: r.content,
            reasoning: r.reasoning,
            finishReason: r.finishReason,
            toolCalls: r.toolCalls,
            usage: r.usage,
            model: r.model
          })
          expect(comparable(collected)).toEqual(comparable(complete))
          expect(collected.reasoning).toBe("Think.")
          expect(collected.content).not.toContain("Think")
          expect(lastBody(server).stream).toBe(true)
        })
      ))

    it.live("streamText gives exactly textDeltas(stream), text and failures alike", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const llm = yield* Llm.Llm
          // the backend's stream can drop the other events as it decodes (no extra stage); Llm.streamText uses that
          expect(isProjectable(llm.stream([Message.user("Hi")]))).toBe(true)
          const scripts: ReadonlyArray<FakeProvider.Script> = [
            { kind: "reply", text: "Zwölf Boxkämpfer 🚀 jagen Viktor.", chunkSize: 2, reasoning: "Count first." },
            // one event per network read: each batch the decoder sees carries one delta
            { kind: "reply", text: "one event per read", chunkSize: 4, delayMs: 3 },
            {
              kind: "reply",
              text: "Checking both.",
              chunkSize: 5,
              toolCalls: [{ id: "call_w", name: "get_weather", arguments: { city: "Oslo" } }]
            },
            {
              kind: "reply",
              text: "Partial answer that breaks",
              chunkSize: 4,
              inBandError: { afterEvents: 5, type: "overloaded_error", message: "Overloaded" }
            },
            { kind: "reply", text: "Cut off here", chunkSize: 3, omitTerminator: true },
            { kind: "reply", text: "abc def ghi", malformedAfterEvents: 3 },
            { kind: "status", status: 400, body: { error: { message: "bad request", type: "invalid_request_error" } } }
          ]
          /** The texts a stream delivered, and how it ended. */
          const outcome = (texts: Stream.Stream<string, LlmError, Llm.Llm>) =>
            Effect.gen(function*() {
              const seen: Array<string> = []
              const exit = yield* Effect.either(Stream.runForEach(texts, (text) => Effect.sync(() => seen.push(text))))
              return { seen, end: exit._tag === "Right" ? "done" : `${exit.left._tag}: ${exit.left.message}` }
            })
          const call = [Message.user("Weather in Oslo?")]
          for (const script of scripts) {
            server.enqueue(script, script)
            const fused = yield* outcome(Llm.streamText(call, { tools: [weather] }))
            const staged = yield* outcome(LlmStream.textDeltas(Llm.stream(call, { tools: [weather] })))
            expect(fused).toEqual(staged)
            // and a reply that ends well is all there, in order
            if (fused.end === "done" && script.kind === "reply") expect(fused.seen.join("")).toBe(script.text)
          }
          expect(server.requests.filter((request) => request.protocol !== "other").length).toBe(2 * scripts.length)
        }), { retry: { maxRetries: 0 } }))

    it.live("streamText honours a wrapper that changes the backend's events", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "quiet words", chunkSize: 3 })
          const loud = Layer.effect(
            Llm.Llm,
            Effect.map(Llm.Llm, (llm): Llm.Llm.Service => ({
              ...llm,
              stream: (messages, options) =>
                Stream.map(llm.stream(messages, options), (event) =>
                  event._tag === "TextDelta"
                    ? LlmStream.StreamEvent.TextDelta({ text: event.text.toUpperCase() })
                    : event)
            }))
          )
          const texts = yield* Stream.runCollect(Llm.streamText([Message.user("Hi")])).pipe(
            Effect.provide(Layer.provide(loud, Layer.succeed(Llm.Llm, yield* Llm.Llm)))
          )
          expect(Chunk.toReadonlyArray(texts).join("")).toBe("QUIET WORDS")
        })
      ))

    for (const streamed of [false, true]) {
      it.live(`${streamed ? "streams" : "returns"} two parallel tool calls, then replays their results`, () =>
        withServer((server) =>
          Effect.gen(function*() {
            server.enqueue({
              kind: "reply",
              toolCalls: [
                { id: "call_w", name: "get_weather", arguments: { city: "Oslo" } },
                { id: "call_t", name: "get_time", arguments: "{\"city\": \"Oslo\"}" }
              ]
            })
            const options = { tools: [weather, clock] }
            const result = streamed
              ? yield* LlmStream.collect(Llm.stream(question, options))
              : yield* Llm.complete(question, options)
            expect(result.finishReason).toBe("tool_calls")
            expect(result.hasToolCalls).toBe(true)
            expect(result.toolCalls.map((call) => ({ ...call }))).toEqual([
              { id: "call_w", name: "get_weather", arguments: { city: "Oslo" } },
              { id: "call_t", name: "get_time", arguments: { city: "Oslo" } }
            ])
            server.enqueue({ kind: "reply", text: "Rainy, 14:05." })
            const followUp = [
              ...question,
              Message.assistant(result.content, result.toolCalls),
              Message.tool({ toolCallId: "call_w", name: "get_weather", content: "4°C, rain" }),
              Message.tool({ toolCallId: "call_t", name: "get_time", content: "14:05" })
            ]
            const final = yield* Llm.complete(followUp, options)
            expect(final.content).toBe("Rainy, 14:05.")
            const body = lastBody(server)
            expect(body.messages).toEqual(
              backend.protocol === "chat"
                ? replayedToolTurn.chat(backend.provider === "local" ? "" : null)
                : replayedToolTurn.messages()
            )
          })
        ))
    }

    it.live("streams a single tool call with its start, fragments and parsed call", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "reply",
            toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Reykjavík", days: 3 } }],
            argumentsChunkSize: 5
          })
          const events = Chunk.toReadonlyArray(yield* Stream.runCollect(Llm.stream(question, { tools: [weather] })))
          const tags = events.map((event) => event._tag)
          expect(tags[0]).toBe("ToolCallStart")
          expect(tags.filter((tag) => tag === "ToolCallDelta").length).toBeGreaterThan(1)
          const deltas = events.flatMap((event) => (event._tag === "ToolCallDelta" ? [event.argumentsDelta] : []))
          expect(JSON.parse(deltas.join(""))).toEqual({ city: "Reykjavík", days: 3 })
          const call = events.find((event) => event._tag === "ToolCall")
          expect(call?._tag === "ToolCall" && call.toolCall.arguments).toEqual({ city: "Reykjavík", days: 3 })
          expect(tags[tags.length - 1]).toBe("Finish")
        })
      ))

    for (const [status, tag] of statusCases) {
      it.live(`maps HTTP ${status} to ${tag}`, () =>
        withServer((server) =>
          Effect.gen(function*() {
            server.setDefault({ kind: "status", status, message: `status ${status}` })
            const error = yield* Effect.flip(Llm.complete([Message.user("Hi")]))
            expect(error._tag).toBe(tag)
            expect(error.status).toBe(status)
            expect(error.message).toContain(`status ${status}`)
            const transient = status === 429 || status >= 500
            // transient statuses are retried (3 retries by default), the rest are not
            expect(server.requests.length).toBe(transient ? 4 : 1)
            const streamed = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("Hi")])))
            expect(streamed._tag).toBe(tag)
          }), { retry: { maxRetries: 3, initialDelay: "1 millis", maxDelay: "2 millis" } }))
    }

    it.live("honours Retry-After, and fails at once when it exceeds the cap", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "status", status: 429, headers: { "retry-after-ms": "30" } }, {
            kind: "reply",
            text: "ok"
          })
          const result = yield* Llm.complete([Message.user("Hi")])
          expect(result.metadata.attempts).toBe(2)
          const [first, second] = server.requests
          expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(25)

          server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "120" } }, {
            kind: "reply",
            text: "ok"
          })
          const error = yield* Effect.flip(Llm.complete([Message.user("Hi")]))
          expect(error._tag).toBe("LlmRateLimitError")
          expect(error._tag === "LlmRateLimitError" && Duration.toSeconds(error.retryAfter!)).toBe(120)
          expect(server.requests.length).toBe(3)
        }), { retry: { maxRetryAfter: "10 seconds", initialDelay: "1 millis" } }))

    it.live("retries an in-band error before the first token", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(
            {
              kind: "reply",
              text: "never seen",
              inBandError: { afterEvents: 0, type: "overloaded_error", message: "Overloaded" }
            },
            { kind: "reply", text: "Second try." }
          )
          const result = yield* LlmStream.collect(Llm.stream([Message.user("Hi")]))
          expect(result.content).toBe("Second try.")
          expect(result.metadata.attempts).toBe(2)
        })
      ))

    it.live("fails an in-band error after the first token, without retrying or repeating text", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(
            {
              kind: "reply",
              text: "Partial answer that breaks",
              chunkSize: 4,
              delayMs: 5,
              inBandError: { afterEvents: 5, type: "overloaded_error", message: "Overloaded" }
            },
            { kind: "reply", text: "must not be used" }
          )
          const seen: Array<string> = []
          const error = yield* Effect.flip(
            Stream.runForEach(Llm.streamText([Message.user("Hi")]), (text) => Effect.sync(() => seen.push(text)))
          )
          expect(error._tag).toBe("LlmProviderError")
          expect(seen.length).toBeGreaterThan(0)
          expect("Partial answer that breaks".startsWith(seen.join(""))).toBe(true)
          expect(server.requests.filter((request) => request.protocol !== "other").length).toBe(1)
        })
      ))

    it.live("fails a cut-off stream with LlmResponseError instead of looking complete", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "Cut off here", omitTerminator: true })
          const error = yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("Hi")])))
          expect(error._tag).toBe("LlmResponseError")
          expect(server.requests.length).toBe(1)
        })
      ))

    it.live("fails a malformed stream chunk with LlmResponseError", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "abc def ghi", malformedAfterEvents: 3 })
          const error = yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("Hi")])))
          expect(error._tag).toBe("LlmResponseError")
        })
      ))

    it.live("times out a stalled stream on the idle timeout, even with keep-alives", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "reply", text: "one two three four", stallAfterEvents: 4, stallKeepAliveMs: 20 })
          const error = yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("Hi")])))
          expect(error._tag).toBe("LlmTimeoutError")
          expect(error._tag === "LlmTimeoutError" && error.kind).toBe("idle")
          yield* Effect.promise(() => server.waitForClientClose(1))
        }), { idleTimeout: "250 millis", retry: { maxRetries: 0 } }))

    it.live("times out a server that never sends a first token, and retries it", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "hang" }, { kind: "reply", text: "Back." })
          const result = yield* LlmStream.collect(Llm.stream([Message.user("Hi")]))
          expect(result.content).toBe("Back.")
          expect(result.metadata.attempts).toBe(2)
        }), { firstTokenTimeout: "200 millis" }))

    it.live("times out complete on the total timeout", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "hang" })
          const error = yield* Effect.flip(Llm.complete([Message.user("Hi")]))
          expect(error._tag === "LlmTimeoutError" && error.kind).toBe("total")
          expect(server.requests.length).toBe(1)
        }), { timeout: "200 millis", retry: { maxRetries: 0 } }))

    it.live("interrupting the consumer closes the connection", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "reply",
            text: "a long answer that keeps coming for a while",
            chunkSize: 2,
            delayMs: 30
          })
          const first = yield* Stream.runHead(Llm.streamText([Message.user("Hi")]))
          expect(first._tag).toBe("Some")
          yield* Effect.promise(() => server.waitForClientClose(1))
          expect(server.requests[0]!.closedByClient).toBe(true)

          server.enqueue({ kind: "hang" })
          const fiber = yield* Effect.fork(Llm.complete([Message.user("Hi")]))
          yield* Effect.promise(() => server.waitForRequests(2))
          yield* Fiber.interrupt(fiber)
          yield* Effect.promise(() => server.waitForClientClose(2))
        })
      ))

    it.live("refuses bad input before sending anything", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const cases = [
            Llm.complete([]),
            Llm.complete([Message.user("Hi")], { temperature: 5 }),
            Llm.complete([Message.user("Hi")], { tools: [Message.toolDefinition({ name: "not valid!" })] }),
            Llm.complete([Message.user("Hi"), Message.tool({ toolCallId: "nope", name: "x", content: "r" })]),
            LlmStream.collect(Llm.stream([]))
          ]
          for (const effect of cases) {
            const error = yield* Effect.flip(effect)
            expect(error._tag).toBe("LlmInvalidRequestError")
            expect(error.message).toContain("nothing was sent")
          }
          expect(server.requests.length).toBe(0)
        })
      ))

    it.live("fails with LlmConnectionError when nothing listens", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Llm.complete([Message.user("Hi")])).pipe(
          Effect.provide(backend.layer("http://127.0.0.1:9", { retry: { maxRetries: 1, initialDelay: "1 millis" } }))
        )
        expect(error._tag).toBe("LlmConnectionError")
        expect(error._tag === "LlmConnectionError" && error.reason).toBe("refused")
      }))
  })
}
