/**
 * Redaction before cutting: every error message that quotes a server's text
 * (status errors, "not JSON", malformed stream chunks, tool-argument errors,
 * in-band errors) redacts the key first and only then cuts the quote, so a
 * key echoed where the cut falls never leaks its first characters. Values
 * taken from response headers (the request id, the content type) are redacted
 * and bounded the same way. Over loopback against the fake provider, every
 * backend, streamed and not, under several chunkings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { LlmError } from "../src/errors.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import { recordLogs } from "./reliability/probes.js"
import { type Backend, backends, fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hi")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

/** The part of the key a cut before redaction leaks ("sk-test-SECRET-"); finding "SECRET" anywhere is a leak. */
const leak = "SECRET"

/**
 * Text of `length` characters or more whose key starts 15 characters before
 * `cut`: cut there before redaction, "sk-test-SECRET-" stays and the rest of
 * the key goes, so the redaction no longer finds it.
 */
const straddling = (cut: number, lead = "") =>
  `${lead}${"x".repeat(cut - 15 - lead.length)}${fakeKey} and then ${"y".repeat(300)}`

/** The same SSE body delivered whole, a few bytes per read, and cut inside the key. */
const chunkings = (body: string): ReadonlyArray<ReadonlyArray<string>> => {
  const at = body.indexOf(fakeKey) + 11
  const pieces: Array<string> = []
  for (let i = 0; i < body.length; i += 97) pieces.push(body.slice(i, i + 97))
  return [[body], pieces, at > 11 ? [body.slice(0, at), body.slice(at)] : [body]]
}

const raw = (chunks: ReadonlyArray<string>, headers?: Record<string, string>): FakeProvider.RawReply => ({
  kind: "raw",
  chunks,
  delayMs: chunks.length > 1 ? 1 : 0,
  ...(headers === undefined ? {} : { headers })
})

/** A whole request and a stream against `script`: both must fail. */
const bothFail = (layer: ReturnType<Backend["layer"]>) =>
  Effect.all([
    Effect.flip(Llm.complete(hi).pipe(Effect.provide(layer))),
    Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
  ])

const checkRedacted = (error: LlmError, label: string, bound = 800) => {
  expect(error.message, label).not.toContain(leak)
  expect(error.message, label).toContain("[redacted]")
  expect(error.message.length, label).toBeLessThan(bound)
}

describe("a key echoed where the cut falls is redacted before the cut", () => {
  for (const backend of backends) {
    const messages = backend.protocol === "messages"

    it.live(`${backend.name}: status errors, plain text and JSON`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const scripts: ReadonlyArray<FakeProvider.Script> = [
          // a proxy's plain-text page quoting the request headers
          { kind: "status", status: 502, body: straddling(500, "upstream error: Authorization: Bearer ") },
          // a JSON error message quoting the key
          { kind: "status", status: 400, message: straddling(500, "Invalid key ") },
          // a very long message is cut too
          { kind: "status", status: 400, message: `${fakeKey} ${"z".repeat(20_000)}` }
        ]
        for (const [i, script] of scripts.entries()) {
          server.setDefault(script)
          for (const error of yield* bothFail(layer)) checkRedacted(error, `${backend.name} script ${i}`)
        }
      })))

    it.live(`${backend.name}: a 200 that is not JSON`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        server.setDefault(raw([straddling(200, "<not json> ")], { "content-type": "application/json" }))
        const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(backend.layer(server.url, noRetry))))
        expect(error._tag).toBe("LlmResponseError")
        expect(error.message).toContain("not JSON")
        checkRedacted(error, backend.name)
      })))

    it.live(`${backend.name}: malformed stream chunks and chunks that are not objects`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const prefix = messages ? "event: content_block_delta\n" : ""
        const bodies = [
          `${prefix}data: ${straddling(200, "{not json ")}\n\n`,
          `${prefix}data: ${JSON.stringify(straddling(200))}\n\n`
        ]
        for (const body of bodies) {
          for (const chunks of chunkings(body)) {
            server.setDefault(raw(chunks))
            const error = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
            expect(error._tag).toBe("LlmResponseError")
            checkRedacted(error, `${backend.name} ${body.slice(0, 30)} in ${chunks.length} reads`)
          }
        }
      })))

    it.live(`${backend.name}: invalid tool-call arguments`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const args = straddling(200, "{\"q\": \"")
        if (messages) {
          // the fake provider renders Messages tool input as an object: write the reply by hand
          const block = { type: "tool_use", id: "toolu_1", name: "lookup" }
          server.enqueue(raw([JSON.stringify({
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "m",
            content: [{ ...block, input: args }],
            stop_reason: "tool_use",
            usage: { input_tokens: 1, output_tokens: 1 }
          })], { "content-type": "application/json" }))
          const events = [
            ["message_start", {
              type: "message_start",
              message: { id: "msg_1", model: "m", usage: { input_tokens: 1 } }
            }],
            ["content_block_start", { type: "content_block_start", index: 0, content_block: { ...block, input: {} } }],
            ["content_block_delta", {
              type: "content_block_delta",
              index: 0,
              delta: { type: "input_json_delta", partial_json: args }
            }],
            ["content_block_stop", { type: "content_block_stop", index: 0 }],
            ["message_delta", {
              type: "message_delta",
              delta: { stop_reason: "tool_use" },
              usage: { output_tokens: 1 }
            }],
            ["message_stop", { type: "message_stop" }]
          ] as const
          server.enqueue(
            raw([events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join("")])
          )
        } else {
          server.setDefault({ kind: "reply", toolCalls: [{ id: "call_1", name: "lookup", arguments: args }] })
        }
        for (const error of yield* bothFail(layer)) {
          expect(error._tag).toBe("LlmResponseError")
          expect(error.message).toContain("not valid JSON")
          checkRedacted(error, backend.name)
        }
      })))

    it.live(`${backend.name}: in-band stream errors`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const bodies = messages
          ? [
            `event: error\ndata: ${straddling(500, "not json: ")}\n\n`,
            `event: error\ndata: ${
              JSON.stringify({ type: "error", error: { type: "overloaded_error", message: straddling(500) } })
            }\n\n`
          ]
          : [
            `data: ${JSON.stringify({ error: { message: straddling(500), type: "server_error" } })}\n\n`,
            `data: ${JSON.stringify({ error: straddling(500) })}\n\n`
          ]
        for (const body of bodies) {
          for (const chunks of chunkings(body)) {
            server.setDefault(raw(chunks))
            const error = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
            checkRedacted(error, `${backend.name} ${body.slice(0, 30)} in ${chunks.length} reads`)
          }
        }
      })))
  }

  it.live("the fallback's log line quotes the redacted message", () =>
    Effect.scoped(Effect.gen(function*() {
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 502, body: straddling(500, "Bad gateway, Authorization: Bearer ") })
      secondary.setDefault({ kind: "reply", text: "from the secondary" })
      const chain = Fallback.layer([
        Local.layer({ ...noRetry, baseUrl: primary.url, apiKey: Redacted.make(fakeKey) }),
        Anthropic.layer({ ...noRetry, baseUrl: secondary.url, apiKey: Redacted.make(fakeKey) })
      ])
      const { layer: logs, logs: lines } = recordLogs()
      const result = yield* Llm.complete(hi).pipe(Effect.provide(chain), Effect.provide(logs))
      expect(result.content).toBe("from the secondary")
      const streamed = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(chain), Effect.provide(logs))
      expect(streamed.content).toBe("from the secondary")
      const fallbacks = lines.filter((line) => line.message.includes("falling back"))
      expect(fallbacks.length).toBe(2)
      for (const line of fallbacks) {
        expect(line.formatted).toContain("[redacted]")
        expect(line.formatted).not.toContain(leak)
      }
    })))

  it.live("a key shorter than 8 characters is redacted too", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const key of ["k9Zq", "k9Zq7wX"]) {
        const layer = OpenAi.layer({ ...noRetry, baseUrl: `${server.url}/v1`, apiKey: Redacted.make(key) })
        server.setDefault({
          kind: "status",
          status: 401,
          message: `Incorrect API key provided: ${key}.`,
          code: "invalid_api_key"
        })
        for (const error of yield* bothFail(layer)) {
          expect(error._tag).toBe("LlmAuthenticationError")
          expect(error.message).toContain("Incorrect API key provided: [redacted].")
          expect(error.message).not.toContain(key)
        }
      }
    })))
})

describe("values from response headers are redacted and bounded", () => {
  const echo = `Bearer ${fakeKey}`

  for (const backend of backends) {
    it.live(`${backend.name}: a request id that echoes the key`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const headers = { "x-request-id": echo }

        server.setDefault({ kind: "reply", text: "fine", headers })
        const result = yield* Llm.complete(hi).pipe(Effect.provide(layer))
        expect(result.metadata.requestId).toBe("Bearer [redacted]")
        const streamed = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
        expect(streamed.metadata.requestId).toBe("Bearer [redacted]")

        // a status error, and a connection reset after the headers
        server.setDefault({ kind: "status", status: 500, headers })
        for (const error of yield* bothFail(layer)) expect(error.requestId).toBe("Bearer [redacted]")
        server.setDefault({ kind: "reply", text: "some text that breaks", resetAfterEvents: 3, headers })
        const reset = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
        expect(reset._tag).toBe("LlmConnectionError")
        expect(reset.requestId).toBe("Bearer [redacted]")
        // a malformed chunk, after the headers
        server.setDefault(raw(["data: {not json\n\n"], headers))
        const malformed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
        expect(malformed.requestId).toBe("Bearer [redacted]")
      })))

    it.live(`${backend.name}: a huge request id or content type is bounded`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        const huge = `req_${"7".repeat(8000)}`
        server.setDefault({ kind: "reply", text: "fine", headers: { "x-request-id": huge } })
        const result = yield* Llm.complete(hi).pipe(Effect.provide(layer))
        expect(result.metadata.requestId!.startsWith("req_777")).toBe(true)
        expect(result.metadata.requestId!.length).toBeLessThanOrEqual(200)
        const stream = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer))
        expect(stream.metadata.requestId!.length).toBeLessThanOrEqual(200)

        server.setDefault(raw(["<html>login</html>"], { "content-type": `text/html; q=${echo}; ${"p".repeat(8000)}` }))
        const error = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
        expect(error.message).toContain("expected an event stream, got text/html")
        expect(error.message).not.toContain(leak)
        expect(error.message.length).toBeLessThan(800)
      })))
  }
})
