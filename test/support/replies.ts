/**
 * Helpers for the tests of replies over real loopback HTTP: a backend of each
 * wire format pointed at a fake server, raw bodies cut into writes, and how
 * a call failed.
 */
import { NodeHttpClient } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Anthropic from "../../src/layers/Anthropic.js"
import * as Local from "../../src/layers/Local.js"
import type * as Llm from "../../src/Llm.js"
import * as Message from "../../src/Message.js"
import type { ProviderOptions } from "../../src/Provider.js"
import * as FakeProvider from "./FakeProvider.js"

/** The one-message conversation the tests send. */
export const hi = [Message.user("Hi")]

/** Two fast retries, so that whether a failure is retried shows in the request count. */
export const retry: ProviderOptions = { retry: { maxRetries: 2, initialDelay: "1 millis", maxDelay: "2 millis" } }

/** A wire format: Chat Completions (the local backend) or Anthropic Messages. */
export type Protocol = "chat" | "messages"

/** The backend speaking `protocol`, pointed at `url`. */
export const layerFor = (protocol: Protocol, url: string, options: ProviderOptions = retry): Layer.Layer<Llm.Llm> =>
  (protocol === "chat"
    ? Local.layer({ ...options, baseUrl: url, model: "m" })
    : Anthropic.layer({ ...options, baseUrl: url, model: "claude-x" })).pipe(Layer.provide(NodeHttpClient.layerUndici))

/** The same body in one write, in writes of a few bytes, and one byte at a time. */
export const chunkings = (body: string): ReadonlyArray<ReadonlyArray<string>> => {
  const every = (size: number) =>
    Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.slice(i * size, (i + 1) * size))
  return [[body], every(7), every(1)]
}

/** A 200 with these writes, 1 ms apart (a long run of writes back to back). */
export const raw = (
  chunks: ReadonlyArray<string | Uint8Array>,
  contentType = "text/event-stream"
): FakeProvider.RawReply => ({
  kind: "raw",
  headers: { "content-type": contentType },
  chunks,
  delayMs: chunks.length > 100 ? 0 : 1
})

/** How a call failed, and how many requests it took. */
export const failureOf = <A, R>(
  server: FakeProvider.FakeProvider,
  effect: Effect.Effect<A, { _tag: string; message: string }, R>
) =>
  Effect.gen(function*() {
    server.clearRequests()
    const error = yield* Effect.flip(effect)
    return { error: error._tag, message: error.message, requests: server.requests.length }
  })

/** Runs `f` against a fresh fake server, with the backend of `protocol` pointed at it. */
export const withServer = <A, E>(
  protocol: Protocol,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(layerFor(protocol, server.url)))
  }))
