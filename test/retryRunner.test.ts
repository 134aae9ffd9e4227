/**
 * `Retry.retrying` and `Retry.retrier`, the one runner `complete` and streams
 * share: it decides exactly as `Effect.retry` with the same policy would,
 * waits the policy's delays (on the Effect clock), stops at the first
 * success, and gives up with the last failure.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as TestClock from "effect/TestClock"
import { LlmConnectionError, type LlmError, LlmInvalidRequestError, LlmProviderError } from "../src/errors.js"
import * as Retry from "../src/internal/retry.js"

const who = { provider: "p", model: "m" }
const overloaded = (n: number) => new LlmProviderError({ ...who, message: `overloaded ${n}`, status: 529 })
const invalid = new LlmInvalidRequestError({ ...who, message: "bad" })
const refused = new LlmConnectionError({ ...who, message: "refused", reason: "refused" })

/** A policy without jitter in effect: 1 s, then 2 s (jitter is ±20%, the clock is moved well past it). */
const policy = Retry.schedule(Retry.resolve({ maxRetries: 2, initialDelay: "1 second", maxDelay: "10 seconds" }))

/** An attempt failing with `failures` in turn, then succeeding with the number of runs; counts its runs. */
const scripted = (failures: ReadonlyArray<LlmError>) => {
  const runs = { count: 0 }
  const attempt = Effect.suspend(() => {
    const failure = failures[runs.count++]
    return failure === undefined ? Effect.succeed(runs.count) : Effect.fail(failure)
  })
  return { attempt, runs }
}

describe("Retry.retrying", () => {
  it.effect("an attempt that succeeds runs once, with no wait", () =>
    Effect.gen(function*() {
      const { attempt, runs } = scripted([])
      expect(yield* Retry.retrying(policy)(attempt)).toBe(1)
      expect(runs.count).toBe(1)
    }))

  it.effect("transient failures are retried after the policy's delays, until one succeeds", () =>
    Effect.gen(function*() {
      const { attempt, runs } = scripted([overloaded(1), overloaded(2)])
      const fiber = yield* Effect.fork(Retry.retrying(policy)(attempt))
      yield* TestClock.adjust("500 millis")
      expect(runs.count).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(runs.count).toBe(2)
      yield* TestClock.adjust("3 seconds")
      expect(yield* Fiber.join(fiber)).toBe(3)
    }))

  it.effect("past maxRetries the last failure is the call's", () =>
    Effect.gen(function*() {
      const { attempt, runs } = scripted([overloaded(1), overloaded(2), overloaded(3), overloaded(4)])
      const fiber = yield* Effect.fork(Retry.retrying(policy)(attempt))
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(overloaded(3)))
      expect(runs.count).toBe(3)
    }))

  it.effect("a failure the policy does not retry ends the call at once", () =>
    Effect.gen(function*() {
      const { attempt, runs } = scripted([overloaded(1), invalid])
      const fiber = yield* Effect.fork(Retry.retrying(policy)(attempt))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.fail(invalid))
      expect(runs.count).toBe(2)
    }))

  it.effect("decides as Effect.retry with the same policy does, failure by failure", () =>
    Effect.gen(function*() {
      const scripts: ReadonlyArray<ReadonlyArray<LlmError>> = [
        [],
        [overloaded(1)],
        [overloaded(1), invalid],
        [invalid],
        [refused, overloaded(2)],
        [overloaded(1), overloaded(2), overloaded(3)]
      ]
      for (const failures of scripts) {
        const ours = scripted(failures)
        const theirs = scripted(failures)
        const run = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(effect)
            yield* TestClock.adjust("30 seconds")
            return yield* Fiber.await(fiber)
          })
        const a = yield* run(Retry.retrying(policy)(ours.attempt))
        const b = yield* run(Effect.retry(theirs.attempt, policy))
        expect(a).toEqual(b)
        expect(ours.runs.count).toBe(theirs.runs.count)
      }
    }))
})

describe("Retry.retrier", () => {
  it.effect("next waits the policy's delay for a retryable failure, and fails with one it gives up on", () =>
    Effect.gen(function*() {
      const retries = Retry.retrier(policy)
      const first = yield* Effect.fork(retries.next(overloaded(1)))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.await(first)).toEqual(Exit.void)
      expect(yield* Effect.exit(retries.next(invalid))).toEqual(Exit.fail(invalid))
    }))

  it.effect("keeps its count across failures: maxRetries in all", () =>
    Effect.gen(function*() {
      const retries = Retry.retrier(policy)
      for (const n of [1, 2]) {
        const fiber = yield* Effect.fork(retries.next(overloaded(n)))
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.await(fiber)).toEqual(Exit.void)
      }
      expect(yield* Effect.exit(retries.next(overloaded(3)))).toEqual(Exit.fail(overloaded(3)))
    }))

  it.effect("a refused connection is not retried while Fallback has turned that off", () =>
    Effect.gen(function*() {
      const off = yield* Effect.exit(
        Effect.locally(Retry.retrier(policy).next(refused), Retry.retryRefusedConnections, false)
      )
      expect(off).toEqual(Exit.fail(refused))
      expect(yield* FiberRef.get(Retry.retryRefusedConnections)).toBe(true)
    }))
})
