/**
 * The Vercel AI SDK's recorded streams (test/fixtures/peers/vercel-ai, see its
 * SOURCES.md), replayed over loopback HTTP through the fake provider and read
 * through the public API. Each case of `cases.json` says what the peer's own
 * test expects of the stream; here that expectation is mapped to our model
 * (text, reasoning, tool calls, finish reason, usage, typed errors) and checked
 * under several chunkings of the same bytes: whole, per event, one byte at a
 * time (small streams) and random cuts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { isLlmError, isTransient, type LlmError } from "../src/errors.js"
import type { FinishReason } from "../src/Llm.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import type { StreamEvent } from "../src/Stream.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixturesDir, streamScript } from "./support/fixtures.js"

/** What a peer test says a stream produces (see the peer folder's SOURCES.md). */
interface PeerExpect {
  readonly text?: string
  readonly reasoning?: string
  readonly textIncludes?: ReadonlyArray<string>
  readonly reasoningIncludes?: ReadonlyArray<string>
  readonly toolCalls?: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: unknown }>
  readonly finish?: { readonly unified: string; readonly raw: string }
  readonly usage?: {
    readonly input: number
    readonly output: number
    readonly cacheRead?: number
    readonly cacheWrite?: number
    readonly reasoning?: number
  }
  readonly finishLast?: boolean
  readonly success?: boolean
  readonly error?: boolean
  readonly transient?: boolean
  readonly messageIncludes?: string
  readonly textBeforeError?: string
  readonly atMostOneToolCall?: boolean
  readonly notArguments?: unknown
  readonly invalidArguments?: boolean
  readonly neverToolCallIds?: ReadonlyArray<string>
}

/** One entry of `cases.json`. */
interface PeerCase {
  readonly name: string
  readonly wire: "chat" | "anthropic"
  readonly data: string
  readonly framing: "lines" | "raw"
  readonly tools: ReadonlyArray<string>
  readonly peerTest: string
  readonly peerTitle: string
  readonly expectFrom: string
  readonly expect: PeerExpect
}

const peerDir = join(fixturesDir, "peers", "vercel-ai")
const cases =
  (JSON.parse(readFileSync(join(peerDir, "cases.json"), "utf8")) as { readonly cases: ReadonlyArray<PeerCase> })
    .cases

/** The peer's unified finish reasons, in our names. */
const finishReasons: Readonly<Record<string, FinishReason>> = {
  "stop": "stop",
  "length": "length",
  "tool-calls": "tool_calls",
  "content-filter": "content_filter",
  "other": "other"
}

/** Where our finish reason differs from the peer's by design. */
const finishOverrides: Readonly<Record<string, FinishReason>> = {
  // pause_turn means "send the turn back to let the server tool finish": not a complete reply, so not "stop"
  "anthropic/inline-pause-turn": "other"
}

/** The typed error each failing stream must end in (the peer only says "an error part"). */
const errorClasses: Readonly<Record<string, LlmError["_tag"]>> = {
  "openai/inline-error-first-chunk": "LlmProviderError",
  "openai/inline-error-first-chunk-400": "LlmInvalidRequestError",
  "openai/inline-error-after-output": "LlmProviderError",
  "openai/inline-unparsable-chunk": "LlmResponseError",
  "openai/inline-coincidentally-parsable-partial-json": "LlmResponseError",
  "openai-compatible/inline-never-function-name": "LlmResponseError",
  "openai-compatible/inline-structured-error": "LlmInvalidRequestError",
  // an in-band error of unknown type ("error"): not known to be transient, so not retried
  "anthropic/inline-error-chunk": "LlmResponseError",
  "anthropic/inline-overloaded-first-chunk": "LlmProviderError",
  "anthropic/inline-overloaded-after-text": "LlmProviderError",
  "anthropic/spliced-message-start": "LlmResponseError"
}

/** Where our usage differs from the peer's by design. */
const usageOverrides: Readonly<Record<string, Partial<NonNullable<PeerExpect["usage"]>>>> = {
  // the peer's xAI provider adds reasoning_tokens to xAI's completion_tokens; our generic Chat Completions
  // backend reports completion_tokens as sent, as the peer's openai-compatible provider does for the same data
  "xai/xai-text": { output: 1 },
  "xai/xai-tool-call": { output: 26 }
}

/**
 * Cases that fail today, marked `it.fails` until their fix lands: the case
 * name and the cause. "unlisted" ones are bugs no branch was fixing when this
 * file was written.
 */
const knownFailures: Readonly<Record<string, string>> = {}

/** Whether the stream must fail: the peer reports an error part, or (by our design) rejects invalid tool arguments. */
const mustFail = (peer: PeerCase): boolean =>
  // the peer emits a tool call with unparsable arguments; we parse strictly and fail the stream instead
  peer.expect.error === true || peer.expect.invalidArguments === true

/** The layer a case's wire format goes through: Anthropic, OpenAI for openai/*, the local server otherwise. */
const backendOf = (peer: PeerCase) =>
  backends.find((b) =>
    b.name === (peer.wire === "anthropic" ? "anthropic" : peer.name.startsWith("openai/") ? "openai" : "local")
  )!

const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }
const hi = [Message.user("Hi")]

/** The whole body a case's server sends, as bytes. */
const bodyOf = (peer: PeerCase): Uint8Array => {
  const script = scriptOf(peer, "whole")
  return new TextEncoder().encode(script.chunks.map((part) => part as string).join(""))
}

/** The script of a case: its file framed by protocol (peer tests append `[DONE]` to chat lines, as OpenAI sends it). */
const scriptOf = (peer: PeerCase, split: "events" | "whole") =>
  streamScript(readFileSync(join(peerDir, peer.data), "utf8"), {
    framing: peer.framing,
    protocol: peer.wire === "anthropic" ? "messages" : "chat",
    done: 1
  }, { split })

/** `bytes` cut into writes of `sizes` bytes (the last write takes the rest). */
const cut = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let offset = 0
  for (const size of sizes) {
    if (offset >= bytes.length) break
    out.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  if (offset < bytes.length) out.push(bytes.subarray(offset))
  return out
}

/** What our stream produced: the events before the end, and the typed error it failed with, if any. */
interface Outcome {
  readonly events: ReadonlyArray<StreamEvent>
  readonly error: LlmError | undefined
  readonly requests: number
}

/** Serves `chunks` once and streams the reply through the case's layer. */
const replay = (peer: PeerCase, chunks: ReadonlyArray<string | Uint8Array>, delayMs = 0): Promise<Outcome> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    server.enqueue({ kind: "raw", headers: { "content-type": "text/event-stream" }, chunks, delayMs })
    const events: Array<StreamEvent> = []
    const tools = peer.tools.map((name) => Message.toolDefinition({ name }))
    const exit = yield* Stream.runForEach(
      Llm.stream(hi, tools.length > 0 ? { tools } : undefined),
      (event) => Effect.sync(() => events.push(event))
    ).pipe(Effect.provide(backendOf(peer).layer(server.url, noRetry)), Effect.exit)
    if (Exit.isSuccess(exit)) return { events, error: undefined, requests: server.requests.length }
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None" || !isLlmError(failure.value)) {
      return yield* Effect.dieMessage(`expected a typed LlmError, got ${Cause.pretty(exit.cause).slice(0, 2000)}`)
    }
    return { events, error: failure.value, requests: server.requests.length }
  })))

const joined = (events: ReadonlyArray<StreamEvent>, tag: "TextDelta" | "ReasoningDelta"): string =>
  events.flatMap((event) => (event._tag === tag ? [event.text] : [])).join("")

/** Checks one outcome against the case's expectation, mapped to our model. */
const check = (peer: PeerCase, outcome: Outcome, how: string): void => {
  const e = peer.expect
  const at = `${peer.name} (${how})`
  const { error, events } = outcome
  const text = joined(events, "TextDelta")
  const reasoning = joined(events, "ReasoningDelta")
  const calls = events.flatMap((event) => (event._tag === "ToolCall" ? [event.toolCall] : []))
  const finish = events.find((event) => event._tag === "Finish")
  // one request: nothing was retried, no text duplicated
  expect(outcome.requests, at).toBe(1)

  if (mustFail(peer)) {
    expect(error?._tag, at).toBe(errorClasses[peer.name])
    if (e.transient !== undefined) expect(isTransient(error!), at).toBe(e.transient)
    if (e.messageIncludes !== undefined) expect(error!.message, at).toContain(e.messageIncludes)
    // the text delivered before the error reached the consumer, once
    if (e.textBeforeError !== undefined) expect(text, at).toBe(e.textBeforeError)
    if (e.text !== undefined) expect(text, at).toBe(e.text)
    expect(finish, at).toBeUndefined()
  } else {
    expect(error, `${at}: ${error?.message}`).toBeUndefined()
    expect(finish, at).toBeDefined()
    if (e.text !== undefined) expect(text, at).toBe(e.text)
    // a snapshot without reasoning saw none (redacted thinking has no text we could report)
    if (e.reasoning !== undefined || !peer.expectFrom.startsWith("explicit")) {
      expect(reasoning, at).toBe(e.reasoning ?? "")
    }
  }
  for (const part of e.textIncludes ?? []) expect(text, at).toContain(part)
  for (const part of e.reasoningIncludes ?? []) expect(reasoning, at).toContain(part)
  if (e.toolCalls !== undefined) {
    expect(calls.map(({ arguments: args, id, name }) => ({ id, name, arguments: args })), at).toEqual(e.toolCalls)
  }
  if (e.atMostOneToolCall === true) {
    expect(events.filter((event) => event._tag === "ToolCallStart").length, at).toBeLessThanOrEqual(1)
  }
  if (e.notArguments !== undefined) expect(calls.map((call) => call.arguments), at).not.toContainEqual(e.notArguments)
  for (const id of e.neverToolCallIds ?? []) {
    expect(
      events.some((event) =>
        (event._tag === "ToolCall" ? event.toolCall.id : event._tag === "ToolCallStart" ? event.id : "") === id
      ),
      at
    )
      .toBe(false)
  }
  if (finish?._tag === "Finish") {
    // Finish is always our last event
    expect(events[events.length - 1], at).toBe(finish)
    if (e.finish !== undefined) {
      expect(finish.finishReason, at).toBe(finishOverrides[peer.name] ?? finishReasons[e.finish.unified])
    }
    if (e.usage !== undefined) {
      const usage = finish.usage
      // the peer reports 0 for a counter the provider did not send; we leave it out
      expect({
        input: usage.inputTokens,
        output: usage.outputTokens,
        ...(e.usage.cacheRead === undefined ? {} : { cacheRead: usage.cachedInputTokens ?? 0 }),
        ...(e.usage.cacheWrite === undefined ? {} : { cacheWrite: usage.cacheWriteInputTokens ?? 0 }),
        ...(e.usage.reasoning === undefined ? {} : { reasoning: usage.reasoningTokens ?? 0 })
      }, at).toEqual({ ...e.usage, ...usageOverrides[peer.name] })
    }
  }
}

/** Streams at most this long are also replayed one byte at a time. */
const byteAtATimeLimit = 16 * 1024

describe("the Vercel AI SDK's recorded streams", () => {
  it("lists every case of cases.json once, each with its data file", () => {
    expect(cases.length).toBe(64)
    expect(new Set(cases.map((peer) => peer.name)).size).toBe(cases.length)
    for (const peer of cases) expect(bodyOf(peer).length).toBeGreaterThan(0)
    const named = [errorClasses, knownFailures, finishOverrides, usageOverrides].flatMap((table) => Object.keys(table))
    for (const name of named) {
      expect(cases.map((peer) => peer.name)).toContain(name)
    }
  })

  for (const peer of cases) {
    const cause = knownFailures[peer.name]
    const test = cause === undefined ? it : it.fails
    test(`${peer.name}: ${peer.peerTitle}${cause === undefined ? "" : ` [fails today: ${cause}]`}`, async () => {
      const bytes = bodyOf(peer)
      check(peer, await replay(peer, [bytes]), "whole")
      // a millisecond apart, so that each event arrives in a read of its own
      check(peer, await replay(peer, scriptOf(peer, "events").chunks, 1), "per event")
      if (bytes.length <= byteAtATimeLimit) {
        check(peer, await replay(peer, cut(bytes, Array<number>(bytes.length).fill(1))), "one byte at a time")
      }
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: Math.max(1, Math.ceil(bytes.length / 4)) }), {
            minLength: 1,
            maxLength: 64
          }),
          async (sizes) => check(peer, await replay(peer, cut(bytes, sizes)), `cut into ${JSON.stringify(sizes)}`)
        ),
        { numRuns: 4, seed: 12 }
      )
    }, 60_000)
  }
})
