/**
 * The circuit breaker's trial call ends on every exit (DESIGN.md): after the
 * cooldown, the next call is the primary's trial; success closes the breaker,
 * a transient failure reopens it, and anything else (a non-transient error,
 * interruption, a consumer that stopped before content) lets the next call try
 * the primary again. A stream that delivered content before its consumer
 * stopped counts as a success: content arriving is evidence of health.
 *
 * Two fake provider servers over loopback (or a dead port): a local primary
 * and an OpenAI secondary. After each trial the breaker's state is read off
 * two calls against a primary answering 503 (threshold 2): a closed breaker
 * sends both to the primary, a breaker awaiting its trial sends the first
 * (which reopens it) and skips the second, an open one skips both.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { LlmError } from "../src/errors.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hello?")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }
const deadPort = "http://127.0.0.1:9"
const unavailable: FakeProvider.Script = { kind: "status", status: 503, message: "down" }
const breaker: Fallback.FallbackOptions = { circuitBreaker: { failureThreshold: 2, cooldown: "10 seconds" } }

/** A local primary (probed when `probe` is given) and an OpenAI secondary. */
const chain = (primaryUrl: string, secondaryUrl: string, probe?: Effect.Effect<unknown, unknown>) => {
  const primary = Local.layer({ ...noRetry, baseUrl: primaryUrl })
  return Fallback.layer([
    probe === undefined ? primary : { layer: primary, probe },
    OpenAi.layer({ ...noRetry, baseUrl: `${secondaryUrl}/v1` })
  ], breaker).pipe(Layer.provide(NodeHttpClient.layerUndici))
}

/** Chat requests a server received (health probes not counted). */
const chats = (server: FakeProvider.FakeProvider | undefined) =>
  server === undefined ? 0 : server.requests.filter((request) => request.protocol === "chat").length

/** What the primary's breaker does with the next calls. */
type State = "closed" | "tries the primary next" | "open"

/**
 * Reads the primary's breaker state off two calls while the primary answers
 * 503 (on a dead port: refuses). Each call reaching the primary is counted on
 * its server and named in the result's metadata.
 */
const observe = (primary: FakeProvider.FakeProvider | undefined) =>
  Effect.gen(function*() {
    primary?.setDefault(unavailable)
    const reached: Array<boolean> = []
    for (let k = 0; k < 2; k++) {
      const before = chats(primary)
      const result = yield* Llm.complete(hi)
      expect(result.content).toBe("secondary")
      const fallback = result.metadata.fallbacks?.[0]
      expect(fallback?.provider).toBe("local")
      const skipped = fallback?.skipped === true
      if (primary !== undefined) expect(chats(primary) - before).toBe(skipped ? 0 : 1)
      reached.push(!skipped)
    }
    const states: Record<string, State> = {
      "true,true": "closed",
      "true,false": "tries the primary next",
      "false,false": "open"
    }
    return states[reached.join(",")] ?? `impossible: ${reached.join(",")}`
  })

/**
 * Opens the primary's breaker with two failed calls, lets the cooldown pass,
 * then runs `trial` (which must send the primary `trialCalls` chat requests,
 * by default one: its trial call) and returns the state the trial left the
 * breaker in. With `probe`, the primary's breaker asks it before a trial.
 */
const afterTrial = <E>(
  trial: (primary: FakeProvider.FakeProvider) => Effect.Effect<void, E, Llm.Llm>,
  options: {
    readonly probe?: (primary: FakeProvider.FakeProvider) => Effect.Effect<unknown, unknown>
    readonly trialCalls?: number
    /** Runs after the state was read, on the same breaker. */
    readonly then?: (primary: FakeProvider.FakeProvider) => Effect.Effect<void, LlmError, Llm.Llm>
  } = {}
) =>
  Effect.scoped(Effect.gen(function*() {
    const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
    primary.setDefault(unavailable)
    secondary.setDefault({ kind: "reply", text: "secondary" })
    return yield* Effect.gen(function*() {
      for (let k = 0; k < 2; k++) expect((yield* Llm.complete(hi)).content).toBe("secondary")
      expect(chats(primary)).toBe(2)
      expect((yield* Llm.complete(hi)).metadata.fallbacks).toEqual([{ provider: "local", skipped: true }])
      yield* TestClock.adjust("11 seconds")
      yield* trial(primary)
      expect(chats(primary)).toBe(2 + (options.trialCalls ?? 1))
      const state = yield* observe(primary)
      if (options.then !== undefined) yield* options.then(primary)
      return state
    }).pipe(Effect.provide(chain(primary.url, secondary.url, options.probe?.(primary))))
  }))

/** Waits until the server received `n` chat requests. */
const chatsArrived = (server: FakeProvider.FakeProvider, n: number) =>
  Effect.gen(function*() {
    let total = server.requests.length
    while (chats(server) < n) yield* Effect.promise(() => server.waitForRequests(++total))
  })

/** Starts `call`, waits until the primary received its chat request, and interrupts it. */
const interruptedOnceSent = <A, E>(primary: FakeProvider.FakeProvider, call: Effect.Effect<A, E, Llm.Llm>) =>
  Effect.gen(function*() {
    const sent = chats(primary) + 1
    const fiber = yield* Effect.fork(call)
    yield* chatsArrived(primary, sent)
    const exit = yield* Fiber.interrupt(fiber)
    expect(Exit.isInterrupted(exit)).toBe(true)
    // the request was aborted, not left running
    yield* Effect.promise(() => primary.waitForClientClose(1))
  })

/** The text deltas of a stream, with its typed error if it failed. */
const streamed = (stream: Stream.Stream<string, LlmError, Llm.Llm>) =>
  Effect.map(
    Effect.either(Stream.runCollect(stream)),
    (either) =>
      either._tag === "Right"
        ? { text: Chunk.join(either.right, ""), error: undefined }
        : { text: undefined, error: `${either.left._tag}: ${either.left.partialText ?? ""}` }
  )

/** A local server's streamed reply "one two three", as raw bytes cut into `size`-byte writes. */
const rawReply = (size: number): FakeProvider.Script => {
  const chunk = (delta: object, finish: string | null) =>
    `data: ${
      JSON.stringify({
        id: "c1",
        object: "chat.completion.chunk",
        created: 0,
        model: "m",
        choices: [{ index: 0, delta, finish_reason: finish }]
      })
    }\n\n`
  const body = chunk({ role: "assistant", content: "" }, null) +
    ["one ", "two ", "three"].map((text) => chunk({ content: text }, null)).join("") +
    chunk({}, "stop") + "data: [DONE]\n\n"
  const chunks: Array<string> = []
  for (let at = 0; at < body.length; at += size) chunks.push(body.slice(at, at + size))
  return { kind: "raw", chunks, delayMs: 2 }
}

describe("a breaker's trial call, Llm.complete", () => {
  it.effect("succeeds: the breaker closes and the primary answers later calls", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reply", text: "primary is back" })
          expect((yield* Llm.complete(hi)).content).toBe("primary is back")
        })
      )
      expect(state).toBe("closed")
    }))

  it.effect("fails with 503: the breaker reopens and the secondary answers", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue(unavailable)
          const result = yield* Llm.complete(hi)
          expect(result.content).toBe("secondary")
          expect(result.metadata.fallbacks?.[0]?.error?.status).toBe(503)
        })
      )
      expect(state).toBe("open")
    }))

  it.effect("fails with a reset connection: the breaker reopens", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reset" })
          const result = yield* Llm.complete(hi)
          expect(result.content).toBe("secondary")
          expect(result.metadata.fallbacks?.[0]?.error?._tag).toBe("LlmConnectionError")
        })
      )
      expect(state).toBe("open")
    }))

  it.effect("fails with a refused connection: the breaker reopens", () =>
    Effect.scoped(Effect.gen(function*() {
      const secondary = yield* FakeProvider.make
      secondary.setDefault({ kind: "reply", text: "secondary" })
      const state = yield* Effect.gen(function*() {
        yield* observe(undefined) // opens it
        yield* TestClock.adjust("11 seconds")
        const trial = yield* Llm.complete(hi)
        expect(trial.metadata.fallbacks?.[0]?.error?._tag).toBe("LlmConnectionError")
        return yield* observe(undefined)
      }).pipe(Effect.provide(chain(deadPort, secondary.url)))
      expect(state).toBe("open")
      expect(secondary.requests.length).toBe(5)
    })))

  for (
    const [status, tag] of [[400, "LlmInvalidRequestError"], [401, "LlmAuthenticationError"]] as const
  ) {
    it.effect(`fails with ${status}: neither closed nor reopened, the next call tries the primary`, () =>
      Effect.gen(function*() {
        const state = yield* afterTrial((primary) =>
          Effect.gen(function*() {
            primary.enqueue({ kind: "status", status, message: "refused" })
            const error = yield* Effect.flip(Llm.complete(hi))
            expect(error._tag).toBe(tag)
          })
        )
        expect(state).toBe("tries the primary next")
      }))
  }

  it.effect("is interrupted while the primary is still answering: the next call tries the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) => {
        primary.enqueue({ kind: "hang" })
        return interruptedOnceSent(primary, Llm.complete(hi))
      })
      expect(state).toBe("tries the primary next")
    }))

  it.effect("is cut off by the caller's timeout: the next call tries the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "hang" })
          const fiber = yield* Effect.fork(Effect.timeout(Llm.complete(hi), "1 second"))
          yield* chatsArrived(primary, 3)
          yield* TestClock.adjust("2 seconds")
          const error = yield* Effect.flip(Fiber.join(fiber))
          expect(error._tag).toBe("TimeoutException")
        })
      )
      expect(state).toBe("tries the primary next")
    }))

  it.effect("while it runs, other calls skip the primary; once it is interrupted, the next call tries it", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "hang" })
          const fiber = yield* Effect.fork(Llm.complete(hi))
          yield* chatsArrived(primary, 3)
          const meanwhile = yield* Llm.complete(hi)
          expect(meanwhile.content).toBe("secondary")
          expect(meanwhile.metadata.fallbacks).toEqual([{ provider: "local", skipped: true }])
          yield* Fiber.interrupt(fiber)
        })
      )
      expect(state).toBe("tries the primary next")
    }))
})

describe("a reopened breaker", () => {
  const trials: ReadonlyArray<readonly [string, Effect.Effect<string, LlmError, Llm.Llm>]> = [
    ["Llm.complete", Effect.map(Llm.complete(hi), (result) => result.content)],
    ["Llm.streamText", Effect.map(Stream.runCollect(Llm.streamText(hi)), (texts) => Chunk.join(texts, ""))]
  ]
  for (const [api, call] of trials) {
    it.effect(`leaves the primary untouched until the next cooldown is over (${api} trial)`, () =>
      Effect.gen(function*() {
        const state = yield* afterTrial((primary) =>
          Effect.gen(function*() {
            primary.enqueue(unavailable)
            expect(yield* call).toBe("secondary")
          }), {
          then: (primary) =>
            Effect.gen(function*() {
              primary.setDefault({ kind: "reply", text: "primary is back" })
              yield* TestClock.adjust("9 seconds")
              expect(yield* call).toBe("secondary")
              expect(chats(primary)).toBe(3)
              yield* TestClock.adjust("2 seconds")
              expect(yield* call).toBe("primary is back")
              expect(chats(primary)).toBe(4)
            })
        })
        expect(state).toBe("open")
      }))
  }
})

describe("a breaker's trial call, Llm.stream and Llm.streamText", () => {
  it.effect("streams to the end: the breaker closes", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reply", text: "primary is back", chunkSize: 3, delayMs: 2 })
          expect((yield* LlmStream.collect(Llm.stream(hi))).content).toBe("primary is back")
        })
      )
      expect(state).toBe("closed")
    }))

  it.effect("fails with 503 before any event: the breaker reopens and the secondary streams", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue(unavailable)
          expect(yield* streamed(Llm.streamText(hi))).toEqual({ text: "secondary", error: undefined })
        })
      )
      expect(state).toBe("open")
    }))

  it.effect("fails with a reset connection after content: the breaker reopens", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reply", text: "one two three", chunkSize: 4, delayMs: 2, resetAfterEvents: 2 })
          expect(yield* streamed(Llm.streamText(hi))).toEqual({ text: undefined, error: "LlmConnectionError: one " })
        })
      )
      expect(state).toBe("open")
    }))

  for (
    const [status, tag] of [[400, "LlmInvalidRequestError"], [401, "LlmAuthenticationError"]] as const
  ) {
    it.effect(`fails with ${status}: neither closed nor reopened, the next call tries the primary`, () =>
      Effect.gen(function*() {
        const state = yield* afterTrial((primary) =>
          Effect.gen(function*() {
            primary.enqueue({ kind: "status", status, message: "refused" })
            expect(yield* streamed(Llm.streamText(hi))).toEqual({ text: undefined, error: `${tag}: ` })
          })
        )
        expect(state).toBe("tries the primary next")
      }))
  }

  it.effect("is interrupted before any content: the next call tries the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) => {
        primary.enqueue({ kind: "hang" })
        return interruptedOnceSent(primary, Stream.runDrain(Llm.stream(hi)))
      })
      expect(state).toBe("tries the primary next")
    }))

  it.effect("is interrupted after headers and keep-alives but no content: the next call tries the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) => {
        primary.enqueue({ kind: "raw", chunks: [": keep-alive\n\n", ": keep-alive\n\n"], end: false })
        return interruptedOnceSent(primary, Stream.runDrain(Llm.streamText(hi)))
      })
      expect(state).toBe("tries the primary next")
    }))

  it.effect("is interrupted after content arrived: the breaker closes", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reply", text: "one two three", chunkSize: 4, stallAfterEvents: 2 })
          const first = yield* Deferred.make<string>()
          const fiber = yield* Effect.fork(
            Stream.runForEach(Llm.streamText(hi), (delta) => Deferred.succeed(first, delta))
          )
          expect(yield* Deferred.await(first)).toBe("one ")
          yield* Fiber.interrupt(fiber)
          yield* Effect.promise(() => primary.waitForClientClose(1))
        })
      )
      expect(state).toBe("closed")
    }))

  // a consumer that stops after content (barge-in): the content is the evidence, however the bytes were cut
  const replies: ReadonlyArray<readonly [string, FakeProvider.Script]> = [
    ["the whole reply in one write", { kind: "reply", text: "one two three", chunkSize: 4 }],
    ["one event per write", { kind: "reply", text: "one two three", chunkSize: 4, delayMs: 10 }],
    ["five bytes per write", rawReply(5)],
    ["a stall after the first delta", { kind: "reply", text: "one two three", chunkSize: 4, stallAfterEvents: 2 }]
  ]
  const consumers: ReadonlyArray<readonly [string, Effect.Effect<ReadonlyArray<string>, LlmError, Llm.Llm>]> = [
    ["Llm.streamText", Effect.map(Stream.runCollect(Stream.take(Llm.streamText(hi), 1)), Chunk.toReadonlyArray)],
    [
      "Llm.stream",
      Effect.map(
        Stream.runCollect(Stream.take(Llm.stream(hi), 1)),
        (events) => Chunk.toReadonlyArray(events).map((event) => event._tag === "TextDelta" ? event.text : event._tag)
      )
    ]
  ]
  for (const [name, script] of replies) {
    for (const [api, consume] of consumers) {
      it.effect(`is stopped by its consumer after the first event (${api}, ${name}): the breaker closes`, () =>
        Effect.gen(function*() {
          const state = yield* afterTrial((primary) =>
            Effect.gen(function*() {
              primary.enqueue(script)
              expect(yield* consume).toEqual(["one "])
            })
          )
          expect(state).toBe("closed")
        }))
    }
  }
})

describe("a breaker's trial behind a health probe", () => {
  /** `Local.health`, passing only on "ok"; with `hang`, the first probe signals it started and never answers. */
  const healthProbe = (hang?: Deferred.Deferred<void>) => (primary: FakeProvider.FakeProvider) => {
    let runs = 0
    const health = Local.health({ baseUrl: primary.url }).pipe(
      Effect.filterOrFail((health) => health.status === "ok", () => "loading")
    )
    return Effect.suspend(() =>
      hang !== undefined && runs++ === 0 ? Effect.zipRight(Deferred.succeed(hang, undefined), Effect.never) : health
    )
  }
  const healthChecks = (primary: FakeProvider.FakeProvider) =>
    primary.requests.filter((request) => request.path === "/health").length

  it.effect("the probe fails: the breaker reopens without a call to the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.setHealth(503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
          expect((yield* Llm.complete(hi)).content).toBe("secondary")
          expect(healthChecks(primary)).toBe(1)
        }), { probe: healthProbe(), trialCalls: 0 })
      expect(state).toBe("open")
    }))

  it.effect("the probe passes and the call fails with 400: the next call probes and tries the primary again", () =>
    Effect.gen(function*() {
      let server: FakeProvider.FakeProvider | undefined
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          server = primary
          primary.enqueue({ kind: "status", status: 400, message: "refused" })
          expect((yield* Effect.flip(Llm.complete(hi)))._tag).toBe("LlmInvalidRequestError")
          expect(healthChecks(primary)).toBe(1)
        }), { probe: healthProbe() })
      expect(state).toBe("tries the primary next")
      // the trial's probe and the next trial's
      expect(healthChecks(server!)).toBe(2)
    }))

  it.effect("the probe is interrupted: the next call probes again and tries the primary", () =>
    Effect.gen(function*() {
      const started = Deferred.unsafeMake<void>(FiberId.none)
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Llm.complete(hi))
          yield* Deferred.await(started)
          expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
          expect(healthChecks(primary)).toBe(0)
        }), { probe: healthProbe(started), trialCalls: 0 })
      expect(state).toBe("tries the primary next")
    }))

  it.effect("the probe passes and the call is interrupted: the next call tries the primary", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) => {
        primary.enqueue({ kind: "hang" })
        return interruptedOnceSent(primary, Stream.runDrain(Llm.streamText(hi)))
      }, { probe: healthProbe() })
      expect(state).toBe("tries the primary next")
    }))

  it.effect("the probe passes and the consumer stops after content: the breaker closes", () =>
    Effect.gen(function*() {
      const state = yield* afterTrial((primary) =>
        Effect.gen(function*() {
          primary.enqueue({ kind: "reply", text: "one two three", chunkSize: 4, stallAfterEvents: 2 })
          expect(Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(Llm.streamText(hi), 1)))).toEqual(["one "])
        }), { probe: healthProbe() })
      expect(state).toBe("closed")
    }))
})
