/**
 * The stream session (src/internal/streamSession.ts) over real loopback HTTP,
 * written against its surviving mutants (docs/mutation/streamSession.md):
 * the Finish's metadata (attempts, request id of the answering attempt,
 * latencies), which deadline a timeout names and with what duration, the
 * text a failure after content carries, and the `Llm.stream.open` span.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
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

describe("stream session: the Llm.stream.open span", () => {
  it.live("ends at the commit, successfully, with the layer's attributes; a call that gives up ends it with the error", () =>
    withServer("chat", retry, (server) =>
      Effect.gen(function*() {
        const { spans, tracer } = yield* recordSpans
        server.setDefault({ kind: "reply", text: "a b c d e f g h", chunkSize: 2, delayMs: 30 })
        const started = Date.now()
        let endedAtCommit: boolean | undefined
        const events: Array<StreamEvent> = []
        yield* Stream.runForEach(Llm.stream(hi), (event) =>
          Effect.sync(() => {
            if (events.length === 0) {
              const open = spans.find((span) => span.name === "Llm.stream.open")
              endedAtCommit = open?.status._tag === "Ended"
            }
            events.push(event)
          })).pipe(Effect.withTracer(tracer))
        expect(Date.now() - started).toBeGreaterThan(100)
        const open = spans.filter((span) => span.name === "Llm.stream.open")
        expect(open.length).toBe(1)
        expect(endedAtCommit).toBe(true)
        const status = open[0]!.status
        expect(status._tag === "Ended" && status.exit._tag).toBe("Success")
        expect(open[0]!.attributes.size).toBeGreaterThan(0)

        server.setDefault({ kind: "status", status: 503 })
        spans.length = 0
        const failed = yield* run(Llm.stream(hi)).pipe(Effect.withTracer(tracer))
        expect(failed.error?._tag).toBe("LlmProviderError")
        const gaveUp = spans.filter((span) => span.name === "Llm.stream.open")
        expect(gaveUp.length).toBe(1)
        const end = gaveUp[0]!.status
        expect(end._tag === "Ended" && end.exit._tag).toBe("Failure")
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
