/**
 * Connection reuse: calls that end normally give their socket back to the
 * keep-alive pool, so a long run does not open (and leave in TIME_WAIT) a new
 * TCP connection per call. undici opens a second connection when the second
 * request is sent in the same tick the first socket is released: two is the
 * steady state, whatever the number of calls.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Llm from "../../src/Llm.js"
import * as Message from "../../src/Message.js"
import * as LlmStream from "../../src/Stream.js"
import { backends } from "../support/backends.js"
import * as FakeProvider from "../support/FakeProvider.js"

const calls = 20

describe("connection reuse", () => {
  it.live(`${calls} sequential whole requests share at most two connections`, () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const backend of backends) {
        server.reset()
        server.setDefault({ kind: "reply", text: "Reused." })
        yield* Effect.repeatN(Llm.complete([Message.user("Hi")]), calls - 1).pipe(
          Effect.provide(backend.layer(server.url))
        )
        expect(server.stats.connections, backend.name).toBeLessThanOrEqual(2)
      }
    })))

  it.live(`${calls} sequential streams whose body ends in one write share at most two connections`, () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "Streamed in one write." })
      yield* Effect.repeatN(LlmStream.collect(Llm.stream([Message.user("Hi")])), calls - 1).pipe(
        Effect.provide(backends[0]!.layer(server.url))
      )
      expect(server.stats.connections).toBeLessThanOrEqual(2)
    })))

  // The protocol's terminator ([DONE], message_stop) can arrive in a read before the end of the HTTP body (a server
  // that writes each event, then ends the response). The stream ends at the terminator; the transport lets the rest
  // of the body arrive (for at most two seconds) instead of aborting, so the socket goes back to the pool.
  it.live(`${calls} sequential streams written event by event share at most two connections`, () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const backend of backends) {
        server.reset()
        server.setDefault({ kind: "reply", text: "Streamed event by event.", delayMs: 1 })
        yield* Effect.repeatN(LlmStream.collect(Llm.stream([Message.user("Hi")])), calls - 1).pipe(
          Effect.provide(backend.layer(server.url))
        )
        expect(server.stats.connections, backend.name).toBeLessThanOrEqual(2)
      }
    })))
})
