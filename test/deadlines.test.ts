/**
 * Deadlines, one mechanism for every path: Local's probes, `complete` and
 * streams all fail with their `LlmTimeoutError` when the deadline passes,
 * whether the server is slow to answer, stalls mid-body, or the request is
 * still queued behind a busy connection. Over real loopback HTTP; the
 * deadline arithmetic itself under `TestClock`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Pool } from "undici"
import { type LlmError, LlmTimeoutError } from "../src/errors.js"
import * as HttpTransport from "../src/HttpTransport.js"
import * as Deadlines from "../src/internal/deadlines.js"
import * as Local from "../src/layers/Local.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { serve } from "./support/loopback.js"

const hi = [Message.user("hi")]

/** A server that takes every request and never answers it. */
const silent = serve(() => {})

/** Runs `effect`, returning its failure and how long it took (wall clock). */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const error = yield* Effect.flip(effect)
    return { error, millis: Date.now() - start }
  })

/**
 * A pool with one connection to `url`, that connection held by a request the
 * server never answers: a next request waits in the pool's queue.
 */
const busyPool = (url: string) =>
  Effect.gen(function*() {
    const pool = new Pool(url, { connections: 1 })
    yield* Effect.addFinalizer(() => Effect.promise(() => pool.destroy()))
    const transport = HttpTransport.undici({ dispatcher: pool })
    const held = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(held, Exit.void))
    // the request holding the connection: sent, never answered
    yield* Effect.fork(transport.send({ method: "GET", url: `${url}/held`, headers: {} }, held))
    yield* Effect.sleep("50 millis")
    return HttpTransport.layerUndici({ dispatcher: pool })
  })

describe("deadlines: Local's probes", () => {
  it.live("a probe the server never answers fails with its timeout at its deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* silent
      const probes: ReadonlyArray<(options: Local.ProbeOptions) => Effect.Effect<unknown, LlmError>> = [
        Local.health,
        Local.models
      ]
      for (const probe of probes) {
        const { error, millis } = yield* timed(probe({ baseUrl: url, timeout: "300 millis" }))
        expect(error).toBeInstanceOf(LlmTimeoutError)
        expect(error._tag === "LlmTimeoutError" && [error.kind, Duration.toMillis(error.timeout)]).toEqual([
          "total",
          300
        ])
        expect(error.message).toMatch(
          /^local server at http:\/\/127\.0\.0\.1:\d+\/(health|v1\/models) did not answer in time$/
        )
        expect(millis).toBeGreaterThanOrEqual(290)
        expect(millis).toBeLessThan(1500)
      }
    })))

  it.live("a model list that stalls after its headers fails with the probe's timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.write("{\"object\":\"list\",")
      })
      const { error, millis } = yield* timed(Local.models({ baseUrl: url, timeout: "300 millis" }))
      expect(error._tag).toBe("LlmTimeoutError")
      expect(error.message).toBe(`local server at ${url}/v1/models did not answer in time`)
      expect(millis).toBeLessThan(1500)
    })))

  it.live("a probe still queued behind a busy connection fails at its deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* silent
      const transport = yield* busyPool(url)
      const { error, millis } = yield* timed(
        Local.health({ baseUrl: url, timeout: "300 millis" }).pipe(Effect.provide(transport))
      )
      expect(error._tag).toBe("LlmTimeoutError")
      expect(millis).toBeLessThan(1500)
    })))
})

/** The default transport's `send` alone: attempts on it are aborted through a scope of their own. */
const scopedOnly = (transport: Layer.Layer<HttpTransport.HttpTransport>) =>
  Layer.effect(HttpTransport.HttpTransport, Effect.map(HttpTransport.HttpTransport, ({ send }) => ({ send }))).pipe(
    Layer.provide(transport)
  )

describe.each([
  { transport: "the default transport (attempts released without a scope)", wrap: <A>(layer: A) => layer },
  { transport: "a transport that takes a scope", wrap: scopedOnly }
])("deadlines: calls still queued behind a busy connection, $transport", ({ wrap }) => {
  const local = (url: string) => Local.layer({ baseUrl: url, timeout: "300 millis", retry: { maxRetries: 0 } })

  it.live("complete fails with its total timeout at its deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* silent
      const transport = wrap(yield* busyPool(url))
      const { error, millis } = yield* timed(
        Llm.complete(hi).pipe(Effect.provide(Layer.provide(local(url), transport)))
      )
      expect(error._tag === "LlmTimeoutError" && error.kind).toBe("total")
      expect(error.message).toBe("local (gpt-oss:120b): the request took longer than 300ms")
      expect(millis).toBeLessThan(1500)
    })))

  it.live("a stream fails with its first-token timeout at its deadline", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* silent
      const transport = wrap(yield* busyPool(url))
      const layer = Layer.provide(
        Local.layer({ baseUrl: url, timeout: "2 seconds", firstTokenTimeout: "300 millis", retry: { maxRetries: 0 } }),
        transport
      )
      const { error, millis } = yield* timed(Stream.runDrain(Llm.streamText(hi)).pipe(Effect.provide(layer)))
      expect(error._tag === "LlmTimeoutError" && error.kind).toBe("firstToken")
      expect(millis).toBeLessThan(1500)
    })))
})

describe("deadlines: the watchdog under TestClock", () => {
  it.effect("within: a request that outlives its deadline is aborted and fails with the timeout", () =>
    Effect.gen(function*() {
      let aborted = false
      const timeout = Deadlines.timeoutError({ provider: "p", model: "m" }, "total", Duration.seconds(5))
      const clock = yield* Effect.clock
      const fiber = yield* Effect.fork(Deadlines.within(clock, 5000, () => timeout, (abort) =>
        Effect.zipRight(
          Scope.addFinalizer(abort, Effect.sync(() => (aborted = true))),
          Effect.never
        )))
      yield* TestClock.adjust("4999 millis")
      expect(aborted).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(aborted).toBe(true)
      // the pending effect is not interrupted by the deadline: the abort is what ends it
      expect(fiber.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("within: a request answered in time pays nothing and its scope closes as used", () =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const value = yield* Deadlines.within(clock, 1000, () => {
        throw new Error("no timeout expected")
      }, (abort) => Effect.as(Scope.addFinalizerExit(abort, (exit) => Effect.sync(() => exits.push(exit))), 42))
      expect(value).toBe(42)
      expect(exits.length === 1 && Exit.isSuccess(exits[0]!)).toBe(true)
      yield* TestClock.adjust("2 seconds")
    }))

  it.effect("within: the failure of an aborted request is replaced by the timeout", () =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const timeout = Deadlines.timeoutError({ provider: "p", model: "m" }, "total", Duration.seconds(1))
      const fiber = yield* Effect.fork(Deadlines.within(clock, 1000, () => timeout, (abort) =>
        Effect.async<never, string>((resume) => {
          Effect.runSync(Scope.addFinalizer(abort, Effect.sync(() => resume(Effect.fail("aborted")))))
        })))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(exit).toEqual(Exit.fail(timeout))
      expect(timeout.message).toBe("p (m): the request took longer than 1s")
    }))

  it("a deadline without a scope releases what its transport attached once: used, unused, or at once when already released", () => {
    const calls: Array<string> = []
    const used = Deadlines.make(undefined, 0)
    used.attach((completed) => calls.push(`used ${completed}`))
    used.releaseAttached(true)
    used.releaseAttached(false)
    const late = Deadlines.make(undefined, 0)
    late.releaseAttached(true)
    late.attach((completed) => calls.push(`late ${completed}`))
    const expired = Deadlines.make(undefined, 0)
    expired.attach((completed) => calls.push(`expired ${completed}`))
    const timeout = Deadlines.timeoutError({ provider: "p", model: "m" }, "total", Duration.seconds(1))
    Deadlines.expire(expired, timeout)
    expired.releaseAttached(true)
    expect(calls).toEqual(["used true", "late false", "expired false"])
    expect(expired.timedOut).toBe(timeout)
  })

  it.effect("attempt without a scope: a request that outlives its deadline is released unused and fails with the timeout", () =>
    Effect.gen(function*() {
      const released: Array<boolean> = []
      const timeout = Deadlines.timeoutError({ provider: "p", model: "m" }, "total", Duration.seconds(5))
      const clock = yield* Effect.clock
      const fiber = yield* Effect.fork(
        Deadlines.attempt(clock, 5000, () => timeout, false, (deadline) =>
          Effect.async<never, string>((resume) => {
            expect(deadline.abort).toBeUndefined()
            deadline.attach((completed) => {
              released.push(completed)
              resume(Effect.fail("aborted"))
            })
          }))
      )
      yield* TestClock.adjust("4999 millis")
      expect(released).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(timeout))
      expect(released).toEqual([false])
    }))

  it.effect("attempt without a scope: a request answered in time is released as used", () =>
    Effect.gen(function*() {
      const released: Array<boolean> = []
      const clock = yield* Effect.clock
      const value = yield* Deadlines.attempt(
        clock,
        1000,
        () => {
          throw new Error("no timeout expected")
        },
        false,
        (deadline) => Effect.sync(() => deadline.attach((completed) => released.push(completed))).pipe(Effect.as(42))
      )
      expect(value).toBe(42)
      expect(released).toEqual([true])
      yield* TestClock.adjust("2 seconds")
      expect(released).toEqual([true])
    }))

  it.effect("attempt without a scope: an interrupted request is released unused", () =>
    Effect.gen(function*() {
      const released: Array<boolean> = []
      const clock = yield* Effect.clock
      const fiber = yield* Effect.fork(Deadlines.attempt(
        clock,
        1000,
        () => {
          throw new Error("no timeout expected")
        },
        false,
        (deadline) =>
          Effect.zipRight(Effect.sync(() => deadline.attach((completed) => released.push(completed))), Effect.never)
      ))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(fiber)
      expect(released).toEqual([false])
    }))

  it("nextStreamDeadline: first token while waiting, then idle or total, whichever comes first", () => {
    const limits = { firstToken: 1000, total: 5000, idle: 300 }
    // waiting for content: the first-token deadline, looked at again at least every idle period
    expect(Deadlines.nextStreamDeadline(limits, 0, undefined, 0)).toBe(300)
    expect(Deadlines.nextStreamDeadline(limits, 0, undefined, 800)).toBe(200)
    expect(Deadlines.nextStreamDeadline(limits, 0, undefined, 1000)).toBe("firstToken")
    // streaming: the idle deadline from the last content, capped by the total one
    expect(Deadlines.nextStreamDeadline(limits, 0, 900, 1000)).toBe(200)
    expect(Deadlines.nextStreamDeadline(limits, 0, 900, 1200)).toBe("idle")
    expect(Deadlines.nextStreamDeadline(limits, 0, 4900, 4950)).toBe(50)
    expect(Deadlines.nextStreamDeadline(limits, 0, 4900, 5000)).toBe("total")
    // no idle limit: only the total one
    expect(Deadlines.nextStreamDeadline({ ...limits, idle: Infinity }, 0, undefined, 10)).toBe(990)
    expect(Deadlines.nextStreamDeadline({ ...limits, idle: Infinity }, 0, 100, 10)).toBe(4990)
  })
})
