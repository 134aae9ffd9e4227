/**
 * The stream session (src/internal/streamSession.ts) over real loopback HTTP,
 * written against its surviving mutants (docs/mutation/streamSession.md):
 * the Finish's metadata (attempts, request id of the answering attempt,
 * latencies, absent fields left out), which deadline a timeout names and
 * with what duration, the text a failure after content carries (text only,
 * not reasoning), a failure before the response, a reply whose body stays
 * open after its terminator, a deadline passing while the consumer is busy,
 * and the call's `chat {model}` span, which covers the whole stream (no span
 * and no trace headers under Effect's built-in tracer).
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as HttpTransport from "../src/HttpTransport.js"
import * as Llm from "../src/Llm.js"
import type { ProviderOptions } from "../src/Provider.js"
import type { StreamEvent } from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { chunkings, hi, layerFor, type Protocol, raw, retry } from "./support/replies.js"
import { recordSpans } from "./support/spans.js"

const protocols: ReadonlyArray<Protocol> = ["chat", "messages"]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

/** Every event a stream delivered, and its failure if it failed. */
const run = (stream: Stream.Stream<StreamEvent, unknown, Llm.Llm>) =>
  Effect.gen(function*() {
    const events: Array<StreamEvent> = []
    const exit = yield* Effect.either(Stream.runForEach(stream, (event) => Effect.sync(() => events.push(event))))
    const error = exit._tag === "Left"
      ? exit.left as Record<string, unknown> & { _tag: string; message: string }
      : undefined
    const text = events.flatMap((event) => event._tag === "TextDelta" ? [event.text] : []).join("")
    return { events, error, text }
  })

/** Runs `f` with a fresh fake server and the backend of `protocol` (with `options`) pointed at it. */
const withServer = <A, E>(
  protocol: Protocol,
  options: ProviderOptions,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(layerFor(protocol, server.url, options)))
  }))

const finishOf = (events: ReadonlyArray<StreamEvent>) => {
  const finish = events.at(-1)
  if (finish?._tag !== "Finish") throw new Error(`expected a Finish last, got ${finish?._tag}`)
  return finish
}

const timeoutOf = (error: Record<string, unknown> | undefined) =>
  error === undefined ? undefined : {
    tag: error._tag,
    kind: error.kind,
    millis: Duration.toMillis(error.timeout as Duration.Duration),
    partialText: error.partialText
  }

describe("stream session: the Finish's metadata", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: attempts, the answering request id, the response id and the latencies`, () =>
      withServer(protocol, retry, (server) =>
        Effect.gen(function*() {
          // the first attempt fails with its own request id, the second answers without one
          server.enqueue(
            { kind: "status", status: 503, headers: { "x-request-id": "req-failed" } },
            {
              kind: "reply",
              text: "hello there",
              id: "resp-1",
              chunkSize: 3,
              delayMs: 20,
              headers: { "x-request-id": "", "request-id": "" }
            }
          )
          const seenAt: Array<number> = []
          const first = yield* run(Llm.stream(hi).pipe(Stream.tap(() => Effect.sync(() => seenAt.push(Date.now())))))
          expect(first.error).toBeUndefined()
          expect(first.text).toBe("hello there")
          const meta = finishOf(first.events).metadata
          expect(meta.attempts).toBe(2)
          expect(meta.requestId).toBeUndefined()
          expect(meta.responseId).toBe("resp-1")
          expect(meta.provider).toBe(protocol === "chat" ? "local" : "anthropic")
          // the first token came after the failed attempt and before the end
          expect(meta.firstTokenMillis).toBeGreaterThanOrEqual(0)
          // the first token is the first event's time, not the last one's: the gap the consumer saw, give or take
          const seen = seenAt.at(-1)! - seenAt[0]!
          expect(seen).toBeGreaterThan(80)
          expect(meta.latencyMillis - meta.firstTokenMillis!).toBeGreaterThanOrEqual(seen - 30)
          // one attempt that answers with a request id
          server.enqueue({ kind: "reply", text: "hi", headers: { "x-request-id": "req-ok" } })
          const second = finishOf((yield* run(Llm.stream(hi))).events).metadata
          expect([second.attempts, second.requestId]).toEqual([1, "req-ok"])
        })))
  }
})

describe("stream session: which deadline a timeout names", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: a first token later than firstTokenTimeout, before and after content`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "hang" })
          const first = yield* run(Llm.stream(hi, { firstTokenTimeout: "200 millis", timeout: "5 seconds" }))
          expect(timeoutOf(first.error)).toEqual({
            tag: "LlmTimeoutError",
            kind: "firstToken",
            millis: 200,
            partialText: undefined
          })
          // a first-token deadline equal to the total one is the total one
          const same = yield* run(Llm.stream(hi, { firstTokenTimeout: "250 millis", timeout: "250 millis" }))
          expect(timeoutOf(same.error)).toEqual({
            tag: "LlmTimeoutError",
            kind: "total",
            millis: 250,
            partialText: undefined
          })
        })))

    it.live(`${protocol}: text, then silence: idle names the idle timeout, total the total one`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          const stall = { kind: "reply", text: "some text then silence", chunkSize: 5, stallAfterEvents: 4 } as const
          server.setDefault(stall)
          const idle = yield* run(Llm.stream(hi, { idleTimeout: "150 millis", timeout: "5 seconds" }))
          expect(idle.text.length).toBeGreaterThan(0)
          expect(timeoutOf(idle.error)).toEqual({
            tag: "LlmTimeoutError",
            kind: "idle",
            millis: 150,
            partialText: idle.text
          })
          const total = yield* run(Llm.stream(hi, { timeout: "400 millis" }))
          expect(total.text.length).toBeGreaterThan(0)
          expect(timeoutOf(total.error)).toEqual({
            tag: "LlmTimeoutError",
            kind: "total",
            millis: 400,
            partialText: total.text
          })
        })))
  }
})

describe("stream session: failures mid-stream", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: a reset after text is a connection error mid-stream, carrying the text`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          server.setDefault({
            kind: "reply",
            text: "one two three four",
            chunkSize: 3,
            delayMs: 5,
            resetAfterEvents: 4
          })
          const out = yield* run(Llm.stream(hi))
          expect(out.error?._tag).toBe("LlmConnectionError")
          expect(out.error?.message).toContain("mid-stream")
          expect(out.text.length).toBeGreaterThan(0)
          expect(out.error?.partialText).toBe(out.text)
        })))

    it.live(`${protocol}: text/html on a 200 names the content type, the status and the request id`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          server.setDefault({
            kind: "raw",
            headers: { "content-type": "text/html", "x-request-id": "req-html" },
            chunks: ["<html></html>"]
          })
          const out = yield* run(Llm.stream(hi))
          expect(out.error?._tag).toBe("LlmResponseError")
          expect(out.error?.message).toContain("expected an event stream, got")
          expect(out.error?.message).toContain("text/html")
          expect(out.error?.status).toBe(200)
          expect(out.error?.requestId).toBe("req-html")
          expect(out.events).toEqual([])
        })))
  }
})

const chatEvent = (text: string) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${
    JSON.stringify(text)
  }},"finish_reason":null}]}\n\n`

describe("stream session: the response byte limit", () => {
  it.live("past maxResponseBytes the stream fails with the limit named, after the text decoded before it", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const body = Array.from({ length: 20 }, (_, i) => chatEvent(`w${i} `)).join("") + "data: [DONE]\n\n"
      const limit = 600
      const layer = layerFor("chat", server.url, { ...noRetry, maxResponseBytes: limit })
      for (const chunks of chunkings(body)) {
        server.setDefault(raw(chunks))
        const out = yield* run(Llm.stream(hi)).pipe(Effect.provide(layer))
        expect(out.error?._tag).toBe("LlmResponseError")
        expect(out.error?.message).toContain(`the response body exceeds ${limit} bytes`)
        expect(out.error?.partialText).toBe(out.text === "" ? undefined : out.text)
        // the text delivered is whole events from the first `limit` bytes
        expect(body.slice(0, limit)).toContain(out.text.split(" ").filter((w) => w !== "").at(-1) ?? "")
      }
      // exactly at the limit is accepted
      server.setDefault(raw(chunkings(body)[1]!))
      const whole = new TextEncoder().encode(body).length
      const exact = yield* run(Llm.stream(hi)).pipe(
        Effect.provide(layerFor("chat", server.url, { ...noRetry, maxResponseBytes: whole }))
      )
      expect(exact.error).toBeUndefined()
      expect(exact.text).toBe(Array.from({ length: 20 }, (_, i) => `w${i} `).join(""))
    })))
})

describe("stream session: the call's chat span", () => {
  it.live("covers the whole stream: open at the first event, ended successfully after the last; a call that gives up ends it with the error", () =>
    withServer("chat", retry, (server) =>
      Effect.gen(function*() {
        const { spans, tracer } = yield* recordSpans
        server.setDefault({ kind: "reply", text: "a b c d e f g h", chunkSize: 2, delayMs: 30 })
        const started = Date.now()
        const openAt: Array<boolean> = []
        yield* Stream.runForEach(Llm.stream(hi), () =>
          Effect.sync(() => {
            openAt.push(spans.find((span) => span.name === "chat m")?.status._tag === "Started")
          })).pipe(Effect.withTracer(tracer))
        expect(Date.now() - started).toBeGreaterThan(100)
        const open = spans.filter((span) => span.name === "chat m")
        expect(open.length).toBe(1)
        // open while every event, the Finish included, reached the consumer
        expect(openAt.length).toBeGreaterThan(3)
        expect(openAt.every((started) => started)).toBe(true)
        const status = open[0]!.status
        expect(status._tag === "Ended" && status.exit._tag).toBe("Success")
        expect(open[0]!.kind).toBe("client")
        expect(open[0]!.attributes.get("gen_ai.request.model")).toBe("m")
        expect(open[0]!.attributes.get("gen_ai.response.time_to_first_chunk")).toBeGreaterThan(0.02)

        server.setDefault({ kind: "status", status: 503 })
        spans.length = 0
        const failed = yield* run(Llm.stream(hi)).pipe(Effect.withTracer(tracer))
        expect(failed.error?._tag).toBe("LlmProviderError")
        const gaveUp = spans.filter((span) => span.name === "chat m")
        expect(gaveUp.length).toBe(1)
        const end = gaveUp[0]!.status
        expect(end._tag === "Ended" && end.exit._tag).toBe("Failure")
        expect(gaveUp[0]!.attributes.get("error.type")).toBe("LlmProviderError")
      })))
})

describe("stream session: a stream read to its end", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: lets its connection be reused by the next call`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "reply", text: "one two three", chunkSize: 4, delayMs: 2 })
          for (let i = 0; i < 6; i++) {
            const out = yield* run(Llm.stream(hi))
            expect(out.text).toBe("one two three")
          }
          expect(server.stats.received).toBe(6)
          // an aborted reply would close its connection: six calls, six connections
          expect(server.stats.connections).toBeLessThanOrEqual(3)
        })))
  }
})

/** A chat chunk without `id`, so that the reply has no response id. */
const anonymousEvent = (text: string) =>
  `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${
    JSON.stringify(text)
  }},"finish_reason":null}]}\n\n`

describe("stream session: the Finish's metadata, fields absent", () => {
  it.live("no response id, no request id: the keys are left out; latencyMillis is the call's duration", () =>
    withServer("chat", noRetry, (server) =>
      Effect.gen(function*() {
        const body = ["one ", "two ", "three"].map(anonymousEvent).join("") + "data: [DONE]\n\n"
        // in one write the whole reply is one read: its first token came with that read, all the same
        for (const chunks of chunkings(body)) {
          server.setDefault({ ...raw(chunks), headers: { "content-type": "text/event-stream", "x-request-id": "" } })
          const before = Date.now()
          const out = yield* run(Llm.stream(hi))
          const elapsed = Date.now() - before
          expect(out.error).toBeUndefined()
          expect(out.text).toBe("one two three")
          const meta = finishOf(out.events).metadata
          expect(Object.keys(meta).sort()).toEqual([
            "attempts",
            "firstTokenMillis",
            "latencyMillis",
            "provider"
          ])
          expect([meta.responseId, meta.requestId, meta.attempts]).toEqual([undefined, undefined, 1])
          expect(meta.latencyMillis).toBeGreaterThanOrEqual(0)
          expect(meta.latencyMillis).toBeLessThanOrEqual(elapsed + 2)
          // a number within the call, never NaN
          expect(meta.firstTokenMillis).toBeGreaterThanOrEqual(0)
          expect(meta.firstTokenMillis).toBeLessThanOrEqual(meta.latencyMillis)
        }
      })))
})

describe("stream session: partialText is the text delivered, not the reasoning", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: a reset after reasoning alone carries no partialText; after reasoning and text, the text`, () =>
      withServer(protocol, noRetry, (server) =>
        Effect.gen(function*() {
          const script = {
            kind: "reply",
            reasoning: "let me think about this",
            text: "the answer is four",
            chunkSize: 4,
            delayMs: 5
          } as const
          // chat: the role chunk, then reasoning; messages: message_start, ping, then the thinking block
          const firstReasoning = protocol === "chat" ? 1 : 3
          server.setDefault({ ...script, resetAfterEvents: firstReasoning + 2 })
          const reasoningOnly = yield* run(Llm.stream(hi))
          expect(reasoningOnly.events.some((event) => event._tag === "ReasoningDelta")).toBe(true)
          expect(reasoningOnly.text).toBe("")
          expect(reasoningOnly.error?._tag).toBe("LlmConnectionError")
          expect(reasoningOnly.error?.partialText).toBeUndefined()
          expect("partialText" in reasoningOnly.error!).toBe(false)

          server.setDefault({ ...script, resetAfterEvents: firstReasoning + 10 })
          const both = yield* run(Llm.stream(hi))
          expect(both.events.some((event) => event._tag === "ReasoningDelta")).toBe(true)
          expect(both.text.length).toBeGreaterThan(0)
          expect(both.error?._tag).toBe("LlmConnectionError")
          expect(both.error?.partialText).toBe(both.text)
        })))
  }
})

describe("stream session: a failure before the response", () => {
  for (const protocol of protocols) {
    it.live(`${protocol}: a reset before the headers is a connection error before the response, retried`, () =>
      withServer(protocol, retry, (server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reset" }, { kind: "reset" }, { kind: "reset" })
          const failed = yield* run(Llm.stream(hi))
          expect(failed.error?._tag).toBe("LlmConnectionError")
          expect(failed.error?.message).toContain("before the response")
          expect(server.requests.length).toBe(3)
          server.enqueue({ kind: "reset" }, { kind: "reply", text: "second time" })
          const retried = yield* run(Llm.stream(hi))
          expect(retried.error).toBeUndefined()
          expect(retried.text).toBe("second time")
          expect(finishOf(retried.events).metadata.attempts).toBe(2)
        })))
  }
})

describe("stream session: the terminator ends the stream", () => {
  it.live("a body that stays open after [DONE] ends the stream at [DONE], under every chunking", () =>
    withServer("chat", noRetry, (server) =>
      Effect.gen(function*() {
        const body = ["one ", "two ", "three"].map(chatEvent).join("") + "data: [DONE]\n\n"
        for (const chunks of chunkings(body)) {
          server.setDefault({ ...raw(chunks), end: false })
          const started = Date.now()
          const out = yield* run(Llm.stream(hi, { timeout: "3 seconds" }))
          expect(out.error).toBeUndefined()
          expect(out.text).toBe("one two three")
          expect(out.events.at(-1)?._tag).toBe("Finish")
          expect(Date.now() - started).toBeLessThan(1500)
        }
      })))
})

describe("stream session: a deadline that passes while the consumer is busy", () => {
  it.live("fails the stream at its next read: the events read after it are not delivered", () =>
    withServer("chat", noRetry, (server) =>
      Effect.gen(function*() {
        const words = Array.from({ length: 12 }, (_, i) => `w${i} `)
        // one event per write, 60 ms apart: by the deadline several are waiting, read but not delivered
        server.setDefault({ ...raw(words.map(chatEvent).concat("data: [DONE]\n\n")), delayMs: 60 })
        const seen: Array<string> = []
        // the consumer takes 600 ms over the first text it gets; the total deadline passes meanwhile
        const consume = (event: StreamEvent) =>
          Effect.suspend(() => {
            if (event._tag !== "TextDelta") return Effect.void
            seen.push(event.text)
            return seen.length === 1 ? Effect.sleep("600 millis") : Effect.void
          })
        const exit = yield* Effect.either(Stream.runForEach(Llm.stream(hi, { timeout: "250 millis" }), consume))
        const error = exit._tag === "Left" ? exit.left : undefined
        expect(error?._tag === "LlmTimeoutError" && error.kind).toBe("total")
        // the first read's events (one, two at most), not the three or four that arrived before the deadline
        expect(seen[0]).toBe("w0 ")
        expect(seen.length).toBeLessThanOrEqual(2)
        expect(error?.partialText).toBe(seen.join(""))
      })))
})

describe("stream session: the call's chat span, how it ends", () => {
  it.live("a failure after the commit ends it with the failure, its error.type and the time to first chunk", () =>
    withServer("chat", noRetry, (server) =>
      Effect.gen(function*() {
        const { spans, tracer } = yield* recordSpans
        server.setDefault({ kind: "reply", text: "one two three four", chunkSize: 3, delayMs: 5, resetAfterEvents: 4 })
        const out = yield* run(Llm.stream(hi)).pipe(Effect.withTracer(tracer))
        expect(out.error?._tag).toBe("LlmConnectionError")
        expect(out.text.length).toBeGreaterThan(0)
        const open = spans.filter((span) => span.name === "chat m")
        expect(open.length).toBe(1)
        const status = open[0]!.status
        expect(status._tag === "Ended" && status.exit._tag).toBe("Failure")
        expect(open[0]!.attributes.get("error.type")).toBe("LlmConnectionError")
        expect(open[0]!.attributes.get("gen_ai.response.time_to_first_chunk")).toBeGreaterThanOrEqual(0)
      })))

  it.live("a consumer that stops listening before the commit ends it, interrupted", () =>
    withServer("chat", noRetry, (server) =>
      Effect.gen(function*() {
        const { spans, tracer } = yield* recordSpans
        server.setDefault({ kind: "hang" })
        const fiber = yield* Effect.fork(run(Llm.stream(hi)).pipe(Effect.withTracer(tracer)))
        yield* Effect.promise(() => server.waitForRequests(1))
        yield* Fiber.interrupt(fiber)
        const open = spans.filter((span) => span.name === "chat m")
        expect(open.length).toBe(1)
        const status = open[0]!.status
        expect(status._tag).toBe("Ended")
        expect(status._tag === "Ended" && Exit.isInterrupted(status.exit)).toBe(true)
      })))

  it.live("under Effect's built-in tracer no span is made: the platform client sends no trace headers", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = layerFor("chat", server.url, noRetry).pipe(
        Layer.provide(HttpTransport.layerHttpClient),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const plain = yield* run(Llm.stream(hi)).pipe(Effect.provide(layer))
      expect(plain.text).toBe("ok")
      const { spans, tracer } = yield* recordSpans
      const traced = yield* run(Llm.stream(hi)).pipe(Effect.provide(layer), Effect.withTracer(tracer))
      expect(traced.text).toBe("ok")
      const [untraced, tracedRequest] = server.requests
      expect(untraced!.headers.traceparent).toBeUndefined()
      expect(untraced!.headers.b3).toBeUndefined()
      // with a tracer, the request carries the trace of the call's span
      const open = spans.find((span) => span.name === "chat m")
      expect(String(tracedRequest!.headers.traceparent)).toContain(open!.traceId)
    })))
})
