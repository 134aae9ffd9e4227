/**
 * Hostile and broken responses: a server that misbehaves on purpose. Every
 * case must end in a typed `LlmError` (never a defect, never a hang, never an
 * unbounded buffer), and the connection must be given up. Run against both
 * wire formats (a local OpenAI-compatible server and Anthropic) over real
 * loopback HTTP.
 */
import { FetchHttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import type * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import * as net from "node:net"
import * as Messages from "../src/codecs/AnthropicMessages.js"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import { isLlmError, type LlmError } from "../src/errors.js"
import * as HttpTransport from "../src/HttpTransport.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { random, sampleMemory, settledHeap } from "./reliability/probes.js"
import { type Backend, backends, fakeKey } from "./support/backends.js"
import { decodeSse } from "./support/decode.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixtureProtocol, fixtureScript, listFixtures } from "./support/fixtures.js"
import { serve } from "./support/loopback.js"

const hi = [Message.user("Hi")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }
const MiB = 1024 * 1024

const chat = backends.find((b) => b.name === "local")!
const messages = backends.find((b) => b.name === "anthropic")!
const both: ReadonlyArray<Backend> = [chat, messages]

/** Runs `f` against a fresh fake server with `backend`'s layer. */
const withServer = <A, E>(
  backend: Backend,
  options: ProviderOptions,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(backend.layer(server.url, options)))
  }))

/** The typed error an effect fails with; a defect or an interruption fails the test. */
const typedFailure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit): Effect.Effect<LlmError> => {
    if (Exit.isSuccess(exit)) return Effect.dieMessage("expected a typed LlmError, the call succeeded")
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None" || !isLlmError(failure.value)) {
      return Effect.dieMessage(`expected a typed LlmError, got ${Cause.pretty(exit.cause).slice(0, 2000)}`)
    }
    return Effect.succeed(failure.value)
  })

const streamed = (options?: Llm.CompletionOptions) => LlmStream.collect(Llm.stream(hi, options))
const completed = (options?: Llm.CompletionOptions) => Llm.complete(hi, options)

/** Peak memory (heap + external + array buffers) above the settled baseline while `effect` runs. */
const peakGrowth = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* Effect.promise(settledHeap)
    const usage = process.memoryUsage()
    const baseline = before + usage.external + usage.arrayBuffers
    const sampler = sampleMemory(5)
    const value = yield* effect
    const peaks = sampler.stop()
    return { value, growth: peaks.peakJs - baseline }
  })

/** What comes before the first text event: nothing (chat), or message_start and a text block's start (messages). */
const streamStart = (backend: Backend): string =>
  backend.protocol === "chat" ? "" : [
    `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n`,
    `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n`
  ].join("")

/** The opening of a text event, in each protocol, that a flood of characters then never closes. */
const openTextEvent = (backend: Backend): string =>
  streamStart(backend) + (backend.protocol === "chat"
    ? `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"`
    : `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`)

/** One complete text event, in each protocol. */
const textEvent = (backend: Backend, text: string): string =>
  backend.protocol === "chat"
    ? `data: ${
      JSON.stringify({ id: "x", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: text } }] })
    }\n\n`
    : `event: content_block_delta\ndata: ${
      JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })
    }\n\n`

const deepArray = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
const deepObject = (depth: number) => "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

for (const backend of both) {
  describe(`hostile responses: ${backend.name}`, () => {
    it.live("random bytes instead of SSE, or instead of JSON", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          const rng = random(7)
          const bytes = Uint8Array.from({ length: 64 * 1024 }, () => rng.int(0, 255))
          server.enqueue({ kind: "raw", chunks: [bytes.subarray(0, 1000), bytes.subarray(1000)] })
          expect((yield* typedFailure(streamed()))._tag).toBe("LlmResponseError")
          // printable garbage is valid UTF-8 but not SSE: no event, no terminator
          const garbage = Array.from({ length: 2000 }, () => String.fromCharCode(rng.int(32, 126))).join("")
          server.enqueue({ kind: "raw", chunks: [garbage, "\n", garbage, "\n\n"] })
          expect((yield* typedFailure(streamed()))._tag).toBe("LlmResponseError")
          server.enqueue({ kind: "raw", headers: { "content-type": "application/json" }, chunks: [bytes] })
          expect((yield* typedFailure(completed()))._tag).toBe("LlmResponseError")
        })))

    it.live("a data: line of many megabytes fails at the event limit, and memory stays bounded", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          // one text event that never ends: 64 KiB of text at a time, until the client gives up
          server.enqueue({ kind: "flood", prefix: openTextEvent(backend), chunk: "x".repeat(64 * 1024) })
          const { growth, value: error } = yield* peakGrowth(typedFailure(streamed()))
          expect(error._tag).toBe("LlmResponseError")
          expect(error.message).toMatch(/exceeded/)
          yield* Effect.promise(() => server.waitForClientClose(1))
          // the reader holds at most the 16 MiB event limit (as text and as bytes), not the flood
          expect(growth).toBeLessThan(256 * MiB)
        })))

    it.live("a streamed body larger than maxResponseBytes fails with LlmResponseError after its partial text", () =>
      withServer(backend, { ...noRetry, maxResponseBytes: 256 * 1024 }, (server) =>
        Effect.gen(function*() {
          // valid events forever: only the byte limit can end this
          server.enqueue({ kind: "flood", prefix: streamStart(backend), chunk: textEvent(backend, "more ") })
          const seen: Array<string> = []
          const error = yield* typedFailure(
            Stream.runForEach(Llm.streamText(hi), (text) => Effect.sync(() => seen.push(text)))
          )
          expect(error._tag).toBe("LlmResponseError")
          expect(error.message).toContain(`exceeds ${256 * 1024} bytes`)
          // the text before the limit reached the consumer, and no more than the limit
          expect(seen.length).toBeGreaterThan(0)
          expect(seen.join("").length).toBeLessThan(256 * 1024)
          yield* Effect.promise(() => server.waitForClientClose(1))
        })))

    it.live("a whole body larger than the default 32 MiB limit fails with LlmResponseError, and memory stays bounded", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "flood",
            headers: { "content-type": "application/json" },
            prefix: "{\"choices\":[{\"message\":{\"content\":\"",
            chunk: "y".repeat(256 * 1024)
          })
          const { growth, value: error } = yield* peakGrowth(typedFailure(completed()))
          expect(error._tag).toBe("LlmResponseError")
          expect(error.message).toContain(`exceeds ${32 * MiB} bytes`)
          yield* Effect.promise(() => server.waitForClientClose(1))
          expect(growth).toBeLessThan(256 * MiB)
        })))

    it.live("an error status with an endless body is read only up to its bound", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "flood",
            status: 503,
            headers: { "content-type": "text/html" },
            chunk: "<p>busy</p>".repeat(4096)
          })
          const error = yield* typedFailure(completed())
          expect(error._tag).toBe("LlmProviderError")
          expect(error.status).toBe(503)
          expect(error.message.length).toBeLessThan(2000)
          yield* Effect.promise(() => server.waitForClientClose(1))
        })))

    it.live("invalid UTF-8 fails with LlmResponseError, streamed or whole", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          const encode = (text: string) => new TextEncoder().encode(text)
          const cases: ReadonlyArray<Uint8Array> = [
            Uint8Array.of(0xff, 0xfe), // never valid
            Uint8Array.of(0xc0, 0xaf), // an overlong "/"
            Uint8Array.of(0xed, 0xa0, 0x80) // a UTF-16 surrogate encoded as UTF-8
          ]
          for (const bad of cases) {
            server.enqueue({ kind: "raw", chunks: [encode(openTextEvent(backend)), bad, encode("\"}}]}\n\n")] })
            const error = yield* typedFailure(streamed())
            expect(error._tag).toBe("LlmResponseError")
            expect(error.message).toMatch(/UTF-8/)
            server.enqueue({
              kind: "raw",
              headers: { "content-type": "application/json" },
              chunks: [encode("{\"choices\":[{\"message\":{\"content\":\""), bad, encode("\"}}]}")]
            })
            const whole = yield* typedFailure(completed())
            expect(whole._tag).toBe("LlmResponseError")
            expect(whole.message).toMatch(/UTF-8/)
          }
          // a stream cut inside a multi-byte character
          server.enqueue({
            kind: "raw",
            chunks: [encode(streamStart(backend) + textEvent(backend, "ok")), Uint8Array.of(0xe2, 0x82)]
          })
          expect((yield* typedFailure(streamed()))._tag).toBe("LlmResponseError")
        })))

    it.live("JSON nested thousands deep as an event, a body or an error body ends in a typed error", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          for (const depth of [5_000, 100_000]) {
            server.enqueue({ kind: "raw", chunks: [`data: ${deepArray(depth)}\n\n`, "data: [DONE]\n\n"] })
            expect((yield* typedFailure(streamed()))._tag).toBe("LlmResponseError")
            server.enqueue({ kind: "raw", headers: { "content-type": "application/json" }, chunks: [deepArray(depth)] })
            expect((yield* typedFailure(completed()))._tag).toBe("LlmResponseError")
            server.enqueue({
              kind: "status",
              status: 400,
              body: `{"error":{"message":"deep","type":${deepArray(depth)}}}`
            })
            expect((yield* typedFailure(completed()))._tag).toBe("LlmInvalidRequestError")
          }
        })))

    it.live("tool-call arguments nested thousands deep end the tool loop with LlmResponseError", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          const kit = Toolkit.make(Tool.make("lookup", {
            description: "Looks up",
            parameters: Schema.Struct({ a: Schema.Unknown }),
            handler: () => Effect.succeed("never reached")
          }))
          for (const depth of [5_000, 100_000]) {
            const args = deepObject(depth)
            const whole: FakeProvider.Script = backend.protocol === "chat"
              ? { kind: "reply", toolCalls: [{ id: "call_1", name: "lookup", arguments: args }] }
              : {
                kind: "raw",
                headers: { "content-type": "application/json" },
                chunks: [
                  `{"id":"m","type":"message","role":"assistant","model":"x","content":[{"type":"tool_use","id":"call_1","name":"lookup","input":${args}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`
                ]
              }
            const streamedCall: FakeProvider.Script = backend.protocol === "chat" ? whole : {
              kind: "raw",
              chunks: [
                streamStart(backend).replace(
                  `{"type":"text","text":""}`,
                  `{"type":"tool_use","id":"call_1","name":"lookup","input":{}}`
                ),
                `event: content_block_delta\ndata: ${
                  JSON.stringify({
                    type: "content_block_delta",
                    index: 0,
                    delta: { type: "input_json_delta", partial_json: args }
                  })
                }\n\n`,
                `event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n`,
                `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":2}}\n\n`,
                `event: message_stop\ndata: {"type":"message_stop"}\n\n`
              ]
            }
            server.enqueue(whole)
            const run = yield* typedFailure(Toolkit.run(hi, kit))
            expect(run._tag).toBe("LlmResponseError")
            expect(run.message).toContain("nested deeper than")
            server.enqueue(streamedCall)
            const stream = yield* typedFailure(LlmStream.collect(Toolkit.stream(hi, kit)))
            expect(stream._tag).toBe("LlmResponseError")
            expect(stream.message).toContain("nested deeper than")
          }
          // nothing was sent back to the model: one request per loop
          expect(server.requests.length).toBe(4)
        })))

    it.live("a non-JSON error page with a 502 is a LlmProviderError with a short message", () =>
      withServer(backend, { retry: { maxRetries: 1, initialDelay: "1 millis" } }, (server) =>
        Effect.gen(function*() {
          const page = `<html><head><title>502 Bad Gateway</title></head><body>${
            "<p>upstream failed</p>".repeat(5000)
          }</body></html>`
          server.setDefault({ kind: "status", status: 502, body: page })
          const error = yield* typedFailure(completed())
          expect(error._tag).toBe("LlmProviderError")
          expect(error.status).toBe(502)
          expect(error.message).toContain("502 Bad Gateway")
          expect(error.message.length).toBeLessThan(1000)
          expect(server.requests.length).toBe(2)
          const streamError = yield* typedFailure(streamed())
          expect(streamError._tag).toBe("LlmProviderError")
        })))

    it.live("content-type text/html on a 200 fails with LlmResponseError", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          const page = {
            kind: "raw",
            headers: { "content-type": "text/html; charset=utf-8" },
            chunks: ["<html><body>Sign in to continue</body></html>"]
          } as const
          server.enqueue(page)
          const error = yield* typedFailure(streamed())
          expect(error._tag).toBe("LlmResponseError")
          expect(error.message).toContain("text/html")
          server.enqueue(page)
          expect((yield* typedFailure(completed()))._tag).toBe("LlmResponseError")
        })))

    it.live("keep-alives forever and no data: the first-token, total and idle deadlines still fire", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          // keep-alive comments (chat) or pings (messages) from the first byte, and never a content event
          const noContent = backend.protocol === "chat" ? 0 : 2
          const keepAlive = {
            kind: "reply",
            text: "never",
            stallAfterEvents: noContent,
            stallKeepAliveMs: 10,
            keepAlive: { everyMs: 10 }
          } as const
          server.enqueue(keepAlive)
          const first = yield* typedFailure(streamed({ firstTokenTimeout: "300 millis" }))
          expect(first._tag === "LlmTimeoutError" && first.kind).toBe("firstToken")
          server.enqueue(keepAlive)
          const total = yield* typedFailure(streamed({ timeout: "300 millis" }))
          expect(total._tag === "LlmTimeoutError" && total.kind).toBe("total")
          // some text, then keep-alives forever
          server.enqueue({
            kind: "reply",
            text: "some text, then silence",
            stallAfterEvents: noContent + 3,
            stallKeepAliveMs: 10
          })
          const idle = yield* typedFailure(streamed({ idleTimeout: "300 millis" }))
          expect(idle._tag === "LlmTimeoutError" && idle.kind).toBe("idle")
          // a whole response that trickles whitespace forever
          server.enqueue({
            kind: "raw",
            headers: { "content-type": "application/json" },
            chunks: Array.from({ length: 1000 }, () => " "),
            delayMs: 10,
            end: false
          })
          const whole = yield* typedFailure(completed({ timeout: "300 millis" }))
          expect(whole._tag === "LlmTimeoutError" && whole.kind).toBe("total")
          yield* Effect.promise(() => server.waitForClientClose(4))
          expect(server.openConnections).toBeLessThanOrEqual(1)
        })))

    it.live("headers that arrive and then nothing", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "headersOnly" })
          const stream = yield* typedFailure(streamed({ firstTokenTimeout: "300 millis" }))
          expect(stream._tag === "LlmTimeoutError" && stream.kind).toBe("firstToken")
          server.enqueue({ kind: "headersOnly", headers: { "content-type": "application/json" } })
          const whole = yield* typedFailure(completed({ timeout: "300 millis" }))
          expect(whole._tag === "LlmTimeoutError" && whole.kind).toBe("total")
          yield* Effect.promise(() => server.waitForClientClose(2))
        })))

    it.live("a server that reads the request and never answers", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "hang" })
          const stream = yield* typedFailure(streamed({ firstTokenTimeout: "300 millis" }))
          expect(stream._tag === "LlmTimeoutError" && stream.kind).toBe("firstToken")
          const whole = yield* typedFailure(completed({ timeout: "300 millis" }))
          expect(whole._tag === "LlmTimeoutError" && whole.kind).toBe("total")
          yield* Effect.promise(() => server.waitForClientClose(2))
        })))

    it.live("a TCP server that accepts the connection and never reads or answers", () =>
      Effect.scoped(Effect.gen(function*() {
        const sockets = new Set<net.Socket>()
        let closed = 0
        const silent = yield* Effect.acquireRelease(
          Effect.async<net.Server>((resume) => {
            const tcp = net.createServer((socket) => {
              sockets.add(socket)
              // read whatever comes, answer nothing
              socket.on("data", () => {})
              socket.on("close", () => {
                closed++
                sockets.delete(socket)
              })
            })
            tcp.listen(0, "127.0.0.1", () => resume(Effect.succeed(tcp)))
          }),
          (tcp) =>
            Effect.async<void>((resume) => {
              for (const socket of sockets) socket.destroy()
              tcp.close(() => resume(Effect.void))
            })
        )
        const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
        const layer = backend.layer(url, noRetry)
        const stream = yield* typedFailure(streamed({ firstTokenTimeout: "300 millis" })).pipe(Effect.provide(layer))
        expect(stream._tag === "LlmTimeoutError" && stream.kind).toBe("firstToken")
        const whole = yield* typedFailure(completed({ timeout: "300 millis" })).pipe(Effect.provide(layer))
        expect(whole._tag === "LlmTimeoutError" && whole.kind).toBe("total")
        // the client gave both connections up
        for (let i = 0; i < 200 && closed < 2; i++) yield* Effect.sleep("10 millis")
        expect(closed).toBe(2)
      })))

    it.live("a 200 whose JSON lacks choices or content fails with LlmResponseError", () =>
      withServer(backend, noRetry, (server) =>
        Effect.gen(function*() {
          const bodies = backend.protocol === "chat"
            ? [
              "{\"id\":\"x\",\"object\":\"chat.completion\"}",
              "{\"choices\":[]}",
              "{\"choices\":[{\"index\":0}]}",
              "{}",
              "[]",
              "null",
              "\"text\""
            ]
            : [
              "{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\"}",
              "{\"type\":\"message\",\"content\":null}",
              "{}",
              "[]",
              "null"
            ]
          for (const body of bodies) {
            server.enqueue({ kind: "raw", headers: { "content-type": "application/json" }, chunks: [body] })
            const error = yield* typedFailure(completed())
            expect(error._tag, body).toBe("LlmResponseError")
          }
        })))
  })
}

describe("hostile responses: streamed decoding", () => {
  // Arguments sent as a JSON object (the llama-server quirk, Anthropic's content_block_start input) nested thousands
  // deep once overflowed JSON.stringify inside the decoder and escaped as a defect.
  it.live("tool-call arguments sent as an object nested thousands deep end in LlmResponseError, not a defect", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const deep = deepObject(10_000)
      server.enqueue({
        kind: "raw",
        chunks: [
          `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":${deep}}}]}}]}\n\n`,
          `data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n`
        ]
      })
      const error = yield* typedFailure(streamed()).pipe(Effect.provide(chat.layer(server.url, noRetry)))
      expect(error._tag).toBe("LlmResponseError")
      const start =
        `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n`
      server.enqueue({
        kind: "raw",
        chunks: [
          start,
          `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":${deep}}}\n\n`,
          `event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":2}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n`
        ]
      })
      const anthropic = yield* typedFailure(streamed()).pipe(Effect.provide(messages.layer(server.url, noRetry)))
      expect(anthropic._tag).toBe("LlmResponseError")
    })))

  // A 200 stream whose chunks never carry `choices` and that ends with [DONE] once "succeeded" with empty text.
  it.live("a 200 stream whose chunks lack choices fails with LlmResponseError", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue({
        kind: "raw",
        chunks: [
          "data: {\"id\":\"x\"}\n\n",
          "data: {\"id\":\"y\",\"object\":\"chat.completion.chunk\"}\n\n",
          "data: [DONE]\n\n"
        ]
      })
      const error = yield* typedFailure(streamed()).pipe(Effect.provide(chat.layer(server.url, noRetry)))
      expect(error._tag).toBe("LlmResponseError")
    })))
})

describe("hostile responses: the local health probe", () => {
  // `Local.health` reads no body (only the status matters); `Local.models` reads at most 1 MiB. A server flooding
  // either once made the probe buffer 1.5 GB in its default 2 s.
  it.live("a server flooding the probe's body is read only up to a bound", () =>
    Effect.scoped(Effect.gen(function*() {
      let written = 0
      const chunk = Buffer.alloc(64 * 1024, "a")
      const { url: baseUrl } = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        const timer = setInterval(() => {
          if (res.destroyed) return clearInterval(timer)
          res.write(chunk)
          written += chunk.length
        }, 1)
        res.on("close", () => clearInterval(timer))
      })
      const probes: ReadonlyArray<Effect.Effect<unknown, LlmError>> = [
        Local.health({ baseUrl, timeout: "400 millis" }),
        Local.models({ baseUrl, timeout: "400 millis" })
      ]
      const failures: Array<string> = []
      for (const probe of probes) {
        written = 0
        const exit = yield* Effect.exit(probe)
        // the probe gave up after a bounded read, long before its timeout let ~25 MB through
        expect(written).toBeLessThan(4 * MiB)
        const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
        failures.push(failure?._tag === "Some" ? `${failure.value._tag}: ${failure.value.message}` : "no failure")
      }
      // health needs only the status; the model list past its bound is refused as too large
      expect(failures[0]).toBe("no failure")
      expect(failures[1]).toMatch(/^LlmResponseError: .*the model list exceeds 1048576 bytes$/)
    })))

  it.live("a model list cut off by the network is a connection error, not an oversized one", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url: baseUrl } = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" })
        res.write("{\"object\":\"list\",\"data\":[", () => res.socket?.destroy())
      })
      const error = yield* Effect.flip(Local.models({ baseUrl }))
      expect(error._tag).toBe("LlmConnectionError")
      expect(error.message).toContain(`reading ${baseUrl}/v1/models`)
    })))
})

// ---------------------------------------------------------------------------
// Redirects: never followed, and the key never goes to the other origin
// ---------------------------------------------------------------------------

/** Each backend with its key header. */
const keyed: ReadonlyArray<{
  readonly name: string
  readonly layer: (url: string) => Layer.Layer<Llm.Llm>
}> = [
  { name: "local", layer: (url) => Local.layer({ ...noRetry, baseUrl: url, apiKey: Redacted.make(fakeKey) }) },
  {
    name: "openai",
    layer: (url) => OpenAi.layer({ ...noRetry, baseUrl: `${url}/v1`, apiKey: Redacted.make(fakeKey) })
  },
  {
    name: "openrouter",
    layer: (url) => OpenRouter.layer({ ...noRetry, baseUrl: `${url}/api/v1`, apiKey: Redacted.make(fakeKey) })
  },
  { name: "anthropic", layer: (url) => Anthropic.layer({ ...noRetry, baseUrl: url, apiKey: Redacted.make(fakeKey) }) }
]

/** Runs the redirect matrix on the default transport, or through `HttpTransport.layerHttpClient` on `client`. */
const redirectRun = (client: Layer.Layer<HttpClient.HttpClient> | undefined) =>
  Effect.scoped(Effect.gen(function*() {
    const [origin, elsewhere] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
    elsewhere.setDefault({ kind: "reply", text: "stolen" })
    const outcomes: Array<string> = []
    for (const backend of keyed) {
      for (const status of [301, 302, 303, 307, 308]) {
        for (const call of [completed(), streamed()]) {
          origin.setDefault({
            kind: "status",
            status,
            body: "",
            headers: { location: `${elsewhere.url}/v1/chat/completions` }
          })
          const transport = client === undefined ? Layer.empty : Layer.provide(HttpTransport.layerHttpClient, client)
          const exit = yield* Effect.exit(
            call.pipe(Effect.provide(Layer.provide(backend.layer(origin.url), transport)))
          )
          const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
          outcomes.push(
            failure?._tag === "Some" && isLlmError(failure.value)
              ? `${failure.value._tag} ${failure.value.message}`
              : "not a typed error"
          )
        }
      }
    }
    return { outcomes, elsewhere: elsewhere.requests }
  }))

describe("redirects", () => {
  const clients = [
    ["default transport", undefined],
    ["HttpClient on undici", NodeHttpClient.layerUndici],
    ["HttpClient on node:http", NodeHttpClient.layer]
  ] as const
  for (const [name, client] of clients) {
    it.live(`${name}: a redirect to another origin is not followed; that origin receives nothing, no key`, () =>
      Effect.gen(function*() {
        const { elsewhere, outcomes } = yield* redirectRun(client)
        expect(elsewhere).toEqual([])
        for (const outcome of outcomes) {
          expect(outcome).toMatch(/^LlmResponseError .*redirect/)
          expect(outcome).not.toContain(fakeKey)
        }
      }))
  }

  // With FetchHttpClient, fetch would follow 301/302/303 to the other origin itself and forward Anthropic's
  // `x-api-key` there (fetch strips only Authorization): the HttpClient transport asks for `redirect: "manual"`.
  it.live("HttpClient on fetch: a redirect to another origin is not followed; that origin receives nothing, no key", () =>
    Effect.gen(function*() {
      const { elsewhere } = yield* redirectRun(FetchHttpClient.layer)
      expect(elsewhere.map((request) => request.headers["x-api-key"] ?? request.headers.authorization)).toEqual([])
    }))
})

// ---------------------------------------------------------------------------
// Arbitrary chunkings of every recorded fixture
// ---------------------------------------------------------------------------

describe("SSE decoding under arbitrary chunkings", () => {
  const fixtures = [...listFixtures("openai"), ...listFixtures("openai-compatible"), ...listFixtures("anthropic")]
    .filter((name) => name.endsWith(".chunks.txt") || name.endsWith(".sse"))
  const codecs = { chat: ChatCompletions.make(), messages: Messages.make() }
  const bytesOf = (name: string): Uint8Array => {
    const script = fixtureScript(name, { split: "whole" })
    const body = script.chunks.map((part) => (typeof part === "string" ? new TextEncoder().encode(part) : part))
    return Uint8Array.from(body.flatMap((part) => [...part]))
  }
  /** Sizes that cut `length` bytes at the given (sorted, unique) positions. */
  const sizesAt = (cuts: ReadonlyArray<number>, length: number): Array<number> => {
    const sorted = [...new Set(cuts)].filter((cut) => cut > 0 && cut < length).sort((a, b) => a - b)
    return [...sorted, length].map((cut, i) => cut - (i === 0 ? 0 : sorted[i - 1]!))
  }

  it("covers every streamed fixture", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(9)
  })

  for (const name of fixtures) {
    it(`${name}: every chunking decodes to the same events as the whole body`, () => {
      const codec = codecs[fixtureProtocol(name)]
      const bytes = bytesOf(name)
      const whole = decodeSse(codec, bytes)
      if ("_tag" in whole) throw new Error(`${name}: ${whole.message}`)
      fc.assert(
        fc.property(
          fc.oneof(
            // cuts anywhere, inside multi-byte characters and `data:` prefixes included
            fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 64 }),
            // many tiny reads
            fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { minLength: 100, maxLength: 400 })
          ),
          (cuts) => {
            const decoded = decodeSse(codec, bytes, sizesAt(cuts, bytes.length))
            expect(decoded).toEqual(whole)
            // each read parsed only until events come out, as a stream's first read is, the rest after
            expect(decodeSse(codec, bytes, sizesAt(cuts, bytes.length), true)).toEqual(whole)
          }
        ),
        { numRuns: 150, seed: 42 }
      )
      // one byte at a time, the extreme; and the whole body as one read, parsed event by event
      expect(decodeSse(codec, bytes, [1])).toEqual(whole)
      expect(decodeSse(codec, bytes, [], true)).toEqual(whole)
    })
  }

  it("arbitrary bytes never make the decoder throw: it returns events or a typed error", () => {
    for (const codec of Object.values(codecs)) {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 2048 }),
          fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }),
          (bytes, sizes) => {
            const decoded = decodeSse(codec, bytes, sizes)
            expect("_tag" in decoded ? isLlmError(decoded) : Array.isArray(decoded.events)).toBe(true)
            // parsed event by event, the same bytes give the same outcome
            expect(decodeSse(codec, bytes, sizes, true)).toEqual(decoded)
          }
        ),
        { numRuns: 300, seed: 7 }
      )
      // SSE-shaped noise: data lines of arbitrary JSON
      fc.assert(
        fc.property(fc.array(fc.json(), { maxLength: 20 }), (values) => {
          const body = values.map((value) => `data: ${value}\n\n`).join("")
          const decoded = decodeSse(codec, body)
          expect("_tag" in decoded ? isLlmError(decoded) : Array.isArray(decoded.events)).toBe(true)
        }),
        { numRuns: 300, seed: 8 }
      )
    }
  })
})
