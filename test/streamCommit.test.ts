/**
 * Where a stream commits, over real loopback HTTP: by what the model
 * produced, never by how the network cut the bytes. Content decoded before
 * an in-band error reaches the consumer, then the error, and the attempt is
 * not retried; bookkeeping before an error commits nothing, so it is.
 * Every stream failure after content carries the text delivered so far.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Fallback from "../src/layers/Fallback.js"
import * as Llm from "../src/Llm.js"
import type { ProviderOptions } from "../src/Provider.js"
import type { StreamEvent } from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixtureScript } from "./support/fixtures.js"
import { hi, layerFor, type Protocol, raw } from "./support/replies.js"

const inline = (name: string): Uint8Array =>
  readFileSync(fileURLToPath(new URL(`./fixtures/peers/vercel-ai/vercel-ai/inline/${name}`, import.meta.url)))

/** Every recorded stream with an in-band error, and what it must give under any chunking. */
const inBandCases: ReadonlyArray<{
  readonly file: string
  readonly protocol: Protocol
  readonly text: string
  readonly error: string
  readonly message: RegExp
  readonly requests: number
}> = [
  {
    file: "anthropic--inline-overloaded-after-text.sse",
    protocol: "messages",
    text: "Hello",
    error: "LlmProviderError",
    message: /Overloaded/,
    requests: 1
  },
  // message_start and the empty block start are bookkeeping: the overloaded error is retried (1 + 2 retries)
  {
    file: "anthropic--inline-overloaded-first-chunk.sse",
    protocol: "messages",
    text: "",
    error: "LlmProviderError",
    message: /Overloaded/,
    requests: 3
  },
  {
    file: "anthropic--inline-error-chunk.sse",
    protocol: "messages",
    text: "",
    error: "LlmResponseError",
    message: /test error/,
    requests: 1
  },
  {
    file: "openai--inline-error-after-output.sse",
    protocol: "chat",
    text: "Hello",
    error: "LlmProviderError",
    message: /stream failed after output/,
    requests: 1
  },
  {
    file: "openai--inline-error-first-chunk.sse",
    protocol: "chat",
    text: "",
    error: "LlmProviderError",
    message: /The server had an error/,
    requests: 3
  },
  {
    file: "openai--inline-error-first-chunk-400.sse",
    protocol: "chat",
    text: "",
    error: "LlmInvalidRequestError",
    message: /bad request/,
    requests: 1
  }
]

/** Bookkeeping, then an overloaded error: nothing was produced, so it is retried however the reads cut it. */
const bookkeepingCases: ReadonlyArray<{ readonly name: string; readonly protocol: Protocol; readonly body: string }> = [
  {
    name: "messages: message_start, ping and an empty text block, then overloaded",
    protocol: "messages",
    body: [
      `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n`,
      `event: ping\ndata: {"type":"ping"}\n\n`,
      `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n`,
      `event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n`
    ].join("")
  },
  {
    name: "chat: a role-only first chunk and a keep-alive, then a server error",
    protocol: "chat",
    body: [
      `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n`,
      `: keep-alive\n\n`,
      `data: {"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}\n\n`,
      `data: [DONE]\n\n`
    ].join("")
  }
]

/** Cuts `bytes` at the given positions. */
const cut = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const sorted = [...new Set(cuts)].filter((at) => at > 0 && at < bytes.length).sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let from = 0
  for (const at of [...sorted, bytes.length]) {
    out.push(bytes.subarray(from, at))
    from = at
  }
  return out
}

/** Cut positions at every SSE event boundary: one event per write. */
const eventCuts = (bytes: Uint8Array): Array<number> => {
  const text = new TextDecoder().decode(bytes)
  const out: Array<number> = []
  for (let at = text.indexOf("\n\n"); at >= 0; at = text.indexOf("\n\n", at + 2)) {
    out.push(new TextEncoder().encode(text.slice(0, at + 2)).length)
  }
  return out
}

/** What a stream delivered and how it ended, and how many requests it took. */
interface Outcome {
  readonly text: string
  readonly error: string | undefined
  readonly message: string | undefined
  readonly partialText: string | undefined
  readonly requests: number
}

const outcomeOf = (server: FakeProvider.FakeProvider, stream: Stream.Stream<StreamEvent, unknown, Llm.Llm>) =>
  Effect.gen(function*() {
    server.clearRequests()
    const seen: Array<string> = []
    const exit = yield* Effect.either(
      Stream.runForEach(stream, (event) => Effect.sync(() => event._tag === "TextDelta" && seen.push(event.text)))
    )
    const error = exit._tag === "Left"
      ? exit.left as { _tag: string; message: string; partialText?: string }
      : undefined
    return {
      text: seen.join(""),
      error: error?._tag,
      message: error?.message,
      partialText: error?.partialText,
      requests: server.requests.filter((request) => request.protocol !== "other").length
    } satisfies Outcome
  })

describe("stream commit point: a function of the bytes, not of the reads", () => {
  const cases = [
    ...inBandCases.map((c) => ({ ...c, name: c.file, bytes: () => inline(c.file) })),
    ...bookkeepingCases.map((c) => ({
      ...c,
      bytes: () => new TextEncoder().encode(c.body),
      text: "",
      error: "LlmProviderError",
      message: /Overloaded/,
      requests: 3
    }))
  ]
  for (const c of cases) {
    it.live(
      `${c.name}: every chunking delivers the same text, the same error, the same number of requests`,
      () =>
        Effect.scoped(Effect.gen(function*() {
          const server = yield* FakeProvider.make
          const bytes = c.bytes()
          const run = (cuts: ReadonlyArray<number>) => {
            server.setDefault(raw(cut(bytes, cuts)))
            return outcomeOf(server, Llm.stream(hi)).pipe(Effect.provide(layerFor(c.protocol, server.url)))
          }
          const expected = (outcome: Outcome) => {
            expect(outcome.text).toBe(c.text)
            expect(outcome.error).toBe(c.error)
            expect(outcome.message).toMatch(c.message)
            expect(outcome.requests).toBe(c.requests)
            // a failure after text carries that text, on a single backend too
            expect(outcome.partialText).toBe(c.text === "" ? undefined : c.text)
          }
          // the whole body in one read, one event per read, one byte per read
          expected(yield* run([]))
          expected(yield* run(eventCuts(bytes)))
          expected(yield* run(Array.from({ length: bytes.length }, (_, i) => i)))
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(
                fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }),
                (cuts) => Effect.runPromise(run(cuts)).then(expected)
              ),
              { numRuns: 12, seed: 12 }
            )
          )
        })),
      60_000
    )
  }

  it.live("a recorded HTTP error body gives the same error under every chunking", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const name = "anthropic/anthropic-parallel-provider-client-tools.error.json"
      const outcomes: Array<Outcome> = []
      for (const split of ["whole", [1], [7, 50, 3]] as const) {
        server.setDefault(fixtureScript(name, { split, delayMs: 1 }))
        outcomes.push(yield* outcomeOf(server, Llm.stream(hi)).pipe(Effect.provide(layerFor("messages", server.url))))
      }
      expect(outcomes[0]!.error).toBe("LlmInvalidRequestError")
      expect(outcomes[0]!.requests).toBe(1)
      expect(outcomes[1]).toEqual(outcomes[0])
      expect(outcomes[2]).toEqual(outcomes[0])
    })))

  const continuation: ReadonlyArray<{ readonly file: string; readonly protocol: Protocol }> = [
    { file: "anthropic--inline-overloaded-after-text.sse", protocol: "messages" },
    { file: "openai--inline-error-after-output.sse", protocol: "chat" }
  ]
  for (const c of continuation) {
    it.live(
      `${c.file}: in a Fallback with continuation the next backend continues from the delivered text, under every chunking`,
      () =>
        Effect.scoped(Effect.gen(function*() {
          const primary = yield* FakeProvider.make
          const secondary = yield* FakeProvider.make
          secondary.setDefault({ kind: "reply", text: "Hello, world.", chunkSize: 3 })
          const layer = Fallback.layer(
            [layerFor(c.protocol, primary.url), layerFor(c.protocol, secondary.url)],
            { continuation: true, circuitBreaker: false }
          )
          const bytes = inline(c.file)
          const run = (cuts: ReadonlyArray<number>) =>
            Effect.gen(function*() {
              primary.setDefault(raw(cut(bytes, cuts)))
              secondary.clearRequests()
              const outcome = yield* outcomeOf(primary, Llm.stream(hi)).pipe(Effect.provide(layer))
              expect(outcome).toEqual({
                text: "Hello, world.",
                error: undefined,
                message: undefined,
                partialText: undefined,
                requests: 1
              })
              expect(secondary.requests.length).toBe(1)
              const sent =
                (secondary.requests[0]!.body as { messages: ReadonlyArray<{ role: string; content: unknown }> })
                  .messages
              expect(JSON.stringify(sent.at(-1))).toContain("Hello")
              expect(sent.at(-1)!.role).toBe("assistant")
            })
          yield* run([])
          yield* run(eventCuts(bytes))
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(
                fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }),
                (cuts) => Effect.runPromise(run(cuts))
              ),
              { numRuns: 8, seed: 3 }
            )
          )
        })),
      60_000
    )
  }
})

describe("partialText on a single backend", () => {
  for (const protocol of ["chat", "messages"] as const) {
    const faults: ReadonlyArray<readonly [string, FakeProvider.Reply, ProviderOptions, string]> = [
      [
        "a reset",
        { kind: "reply", text: "one two three four five six", chunkSize: 4, delayMs: 5, resetAfterEvents: 5 },
        {},
        "LlmConnectionError"
      ],
      ["an idle timeout", { kind: "reply", text: "one two three four five six", chunkSize: 4, stallAfterEvents: 5 }, {
        idleTimeout: "150 millis"
      }, "LlmTimeoutError"],
      [
        "a cut-off stream",
        { kind: "reply", text: "one two three four", chunkSize: 3, omitTerminator: true },
        {},
        "LlmResponseError"
      ],
      [
        "an in-band error after text",
        {
          kind: "reply",
          text: "one two three four",
          chunkSize: 2,
          inBandError: { afterEvents: 5, type: "overloaded_error", message: "Overloaded" }
        },
        {},
        "LlmProviderError"
      ]
    ]
    for (const [name, script, options, tag] of faults) {
      it.live(
        `${protocol}: a stream that fails after text by ${name} carries the text delivered`,
        () =>
          Effect.scoped(Effect.gen(function*() {
            const server = yield* FakeProvider.make
            const layer = layerFor(protocol, server.url, { ...options, retry: { maxRetries: 0 } })
            // the same reply in one write, and event by event
            for (const delayMs of [script.delayMs ?? 0, 3]) {
              server.setDefault({ ...script, delayMs })
              const outcome = yield* outcomeOf(server, Llm.stream(hi)).pipe(Effect.provide(layer))
              expect(outcome.error).toBe(tag)
              expect(outcome.text.length).toBeGreaterThan(0)
              expect(script.text!.startsWith(outcome.text)).toBe(true)
              expect(outcome.partialText).toBe(outcome.text)
              expect(outcome.requests).toBe(1)
            }
          })),
        20_000
      )
    }
  }
})
