/**
 * The retry policy of `internal/retry.ts` pinned value by value: the delays a
 * policy waits (read off the TestClock), how many attempts it makes, whose
 * Retry-After it honours, when a refused connection is retried, how
 * Retry-After headers parse, and which options `problem` rejects. Written to
 * kill the mutants that survived a first Stryker run (docs/mutation/retry.md).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import {
  LlmConnectionError,
  type LlmError,
  LlmInvalidRequestError,
  LlmProviderError,
  LlmRateLimitError,
  LlmTimeoutError
} from "../src/errors.js"
import * as Retry from "../src/internal/retry.js"
import { defaults } from "../src/Retry.js"

const who = { provider: "p", model: "m" }
const overloaded = (n: number) => new LlmProviderError({ ...who, message: `overloaded ${n}`, status: 529 })
const busyFor = (retryAfter: Duration.Duration) =>
  new LlmProviderError({ ...who, message: "busy", status: 503, retryAfter })
const limitedFor = (retryAfter: Duration.Duration) =>
  new LlmRateLimitError({ ...who, message: "limited", status: 429, retryAfter })
const connection = (reason: "refused" | "reset") => new LlmConnectionError({ ...who, message: reason, reason })
const invalid = new LlmInvalidRequestError({ ...who, message: "bad" })

/**
 * Runs an attempt failing with `failures` in turn (then succeeding with the
 * number of runs) under the policy of `options`, moving the TestClock on by an
 * hour; returns the outcome and the waits between attempts in milliseconds.
 */
const run = (
  options: Retry.RetryOptions | undefined,
  failures: ReadonlyArray<LlmError>,
  refusedRetried = true
) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      times.push(now)
      const failure = failures[times.length - 1]
      return failure === undefined ? Effect.succeed(times.length) : Effect.fail(failure)
    })
    const policy = Retry.schedule(Retry.resolve(options))
    const fiber = yield* Effect.fork(
      Effect.locally(Retry.retrying(policy)(attempt), Retry.retryRefusedConnections, refusedRetried)
    )
    yield* TestClock.adjust("1 hour")
    const exit = yield* Fiber.await(fiber)
    return { exit, waits: times.slice(1).map((time, i) => time - times[i]!) }
  })

/** `wait` is `nominal` milliseconds give or take the policy's ±20% jitter. */
const expectJittered = (wait: number | undefined, nominal: number) => {
  expect(wait).toBeGreaterThanOrEqual(nominal * 0.8)
  expect(wait).toBeLessThanOrEqual(nominal * 1.2)
}

describe("retry options", () => {
  it("unset options are the defaults", () => {
    expect(Retry.resolve(undefined)).toEqual(defaults)
    expect(Retry.resolve({})).toEqual(defaults)
  })

  it("set options are decoded", () => {
    const resolved = Retry.resolve({
      maxRetries: 1,
      initialDelay: 250,
      maxDelay: "3 seconds",
      maxRetryAfter: "1 minute"
    })
    expect(resolved.maxRetries).toBe(1)
    expect(Duration.toMillis(resolved.initialDelay)).toBe(250)
    expect(Duration.toMillis(resolved.maxDelay)).toBe(3000)
    expect(Duration.toMillis(resolved.maxRetryAfter)).toBe(60_000)
  })

  it.effect("the default policy retries 3 times after about 2 s, 4 s and 8 s", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* run(undefined, [overloaded(1), overloaded(2), overloaded(3), overloaded(4)])
      expect(exit).toEqual(Exit.fail(overloaded(4)))
      expect(waits).toHaveLength(3)
      expectJittered(waits[0], 2000)
      expectJittered(waits[1], 4000)
      expectJittered(waits[2], 8000)
    }))

  it.effect("a custom initialDelay starts the backoff, doubling each retry", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* run({ initialDelay: "100 millis" }, [overloaded(1), overloaded(2), overloaded(3)])
      expect(exit).toEqual(Exit.succeed(4))
      expect(waits).toHaveLength(3)
      expectJittered(waits[0], 100)
      expectJittered(waits[1], 200)
      expectJittered(waits[2], 400)
    }))

  it.effect("a custom maxDelay caps the backoff", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* run(
        { initialDelay: "1 second", maxDelay: "1500 millis" },
        [overloaded(1), overloaded(2), overloaded(3)]
      )
      expect(exit).toEqual(Exit.succeed(4))
      expectJittered(waits[0], 1000)
      expect(waits[1]).toBeCloseTo(1500, 6)
      expect(waits[2]).toBeCloseTo(1500, 6)
      expect(waits).toHaveLength(3)
    }))

  it.effect("maxRetries counts the retries after the first attempt; 0 turns retrying off", () =>
    Effect.gen(function*() {
      const failures = [overloaded(1), overloaded(2), overloaded(3)]
      const once = yield* run({ maxRetries: 1, initialDelay: "10 millis" }, failures)
      expect(once.exit).toEqual(Exit.fail(overloaded(2)))
      expect(once.waits).toHaveLength(1)
      const never = yield* run({ maxRetries: 0 }, failures)
      expect(never.exit).toEqual(Exit.fail(overloaded(1)))
      expect(never.waits).toEqual([])
    }))
})

describe("Retry-After on errors", () => {
  it("is read from rate limits and provider errors only", () => {
    expect(Retry.retryAfterOf(busyFor(Duration.seconds(7)))).toEqual(Duration.seconds(7))
    expect(Retry.retryAfterOf(limitedFor(Duration.seconds(5)))).toEqual(Duration.seconds(5))
    expect(Retry.retryAfterOf(overloaded(1))).toBeUndefined()
    expect(Retry.retryAfterOf(connection("reset"))).toBeUndefined()
  })

  it("a transient error without Retry-After is retryable; one asking past maxRetryAfter is not", () => {
    const retryable = Retry.isRetryable(Retry.resolve(undefined))
    expect(retryable(overloaded(1))).toBe(true)
    expect(retryable(new LlmTimeoutError({ ...who, message: "slow", kind: "total", timeout: Duration.seconds(1) })))
      .toBe(true)
    expect(retryable(busyFor(Duration.seconds(30)))).toBe(true)
    expect(retryable(busyFor(Duration.seconds(31)))).toBe(false)
    expect(retryable(invalid)).toBe(false)
  })

  it.effect("a provider error's Retry-After replaces the backoff delay, even past maxDelay", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* run(
        { initialDelay: "1 second", maxDelay: "2 seconds" },
        [busyFor(Duration.seconds(7)), overloaded(2)]
      )
      expect(exit).toEqual(Exit.succeed(3))
      expect(waits[0]).toBe(7000)
      expectJittered(waits[1], 2000)
    }))

  it.effect("a rate limit's Retry-After replaces the backoff delay", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* run({ initialDelay: "1 second" }, [limitedFor(Duration.millis(4321))])
      expect(exit).toEqual(Exit.succeed(2))
      expect(waits).toEqual([4321])
    }))

  it.effect("a provider error asking for longer than maxRetryAfter ends the call at once", () =>
    Effect.gen(function*() {
      const tooLong = busyFor(Duration.seconds(31))
      const { exit, waits } = yield* run(undefined, [tooLong])
      expect(exit).toEqual(Exit.fail(tooLong))
      expect(waits).toEqual([])
      const allowed = yield* run({ maxRetryAfter: "1 minute" }, [tooLong])
      expect(allowed.exit).toEqual(Exit.succeed(2))
      expect(allowed.waits).toEqual([31_000])
    }))
})

describe("refused connections", () => {
  it.effect("are retried by default, like any transient error", () =>
    Effect.gen(function*() {
      const { exit, waits } = yield* Effect.gen(function*() {
        const times: Array<number> = []
        const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return times.length === 1 ? Effect.fail(connection("refused")) : Effect.succeed(times.length)
        })
        // The FiberRef as a fresh fiber has it, not set by the test.
        const fiber = yield* Effect.fork(
          Retry.retrying(Retry.schedule(Retry.resolve({ initialDelay: "1 second" })))(attempt)
        )
        yield* TestClock.adjust("1 minute")
        return { exit: yield* Fiber.await(fiber), waits: times.slice(1).map((time, i) => time - times[i]!) }
      })
      expect(exit).toEqual(Exit.succeed(2))
      expectJittered(waits[0], 1000)
    }))

  it.effect("while turned off, only a refused connection stops retrying: other connection errors still retry", () =>
    Effect.gen(function*() {
      const options: Retry.RetryOptions = { initialDelay: "1 second" }
      const refused = yield* run(options, [connection("refused")], false)
      expect(refused.exit).toEqual(Exit.fail(connection("refused")))
      expect(refused.waits).toEqual([])
      const reset = yield* run(options, [connection("reset")], false)
      expect(reset.exit).toEqual(Exit.succeed(2))
      const busy = yield* run(options, [overloaded(1)], false)
      expect(busy.exit).toEqual(Exit.succeed(2))
      const bad = yield* run(options, [invalid], false)
      expect(bad.exit).toEqual(Exit.fail(invalid))
      const tooLong = yield* run(options, [busyFor(Duration.minutes(1))], false)
      expect(tooLong.exit).toEqual(Exit.fail(busyFor(Duration.minutes(1))))
    }))

  it.effect("while on, a refused connection is retried", () =>
    Effect.gen(function*() {
      const { exit } = yield* run({ initialDelay: "1 second" }, [connection("refused"), connection("refused")], true)
      expect(exit).toEqual(Exit.succeed(3))
    }))
})

describe("parseRetryAfter", () => {
  const now = Date.parse("Wed, 25 Nov 2026 10:00:00 GMT")
  const millis = (headers: Record<string, string>) => {
    const parsed = Retry.parseRetryAfter(headers, now)
    return parsed === undefined ? undefined : Duration.toMillis(parsed)
  }
  const yearMillis = 365 * 24 * 60 * 60 * 1000

  it("retry-after-ms that is negative, not a number or infinite is skipped for retry-after", () => {
    expect(millis({ "retry-after-ms": "-5", "retry-after": "2" })).toBe(2000)
    expect(millis({ "retry-after-ms": "soon", "retry-after": "2" })).toBe(2000)
    expect(millis({ "retry-after-ms": "Infinity", "retry-after": "2" })).toBe(2000)
    expect(millis({ "retry-after-ms": "-5" })).toBeUndefined()
    expect(millis({ "retry-after-ms": "soon" })).toBeUndefined()
  })

  it("retry-after-ms of 0 is a wait of 0, not skipped", () => {
    expect(millis({ "retry-after-ms": "0", "retry-after": "9" })).toBe(0)
    expect(millis({ "retry-after-ms": "250.5" })).toBe(250.5)
  })

  it("retry-after in seconds: 0 is a wait of 0, negative or blank is no wait asked", () => {
    expect(millis({ "retry-after": "0" })).toBe(0)
    expect(millis({ "retry-after": "1.5" })).toBe(1500)
    expect(millis({ "retry-after": "-3" })).toBeUndefined()
    expect(millis({ "retry-after": "" })).toBeUndefined()
    expect(millis({ "retry-after": "   " })).toBeUndefined()
  })

  it("an HTTP date in the past is a wait of 0", () => {
    expect(millis({ "retry-after": "Wed, 25 Nov 2026 09:59:00 GMT" })).toBe(0)
    expect(millis({ "retry-after": "Wed, 25 Nov 2026 10:00:02 GMT" })).toBe(2000)
  })

  it("a longer wait than maxServerRetryAfter (365 days) is read as it", () => {
    expect(Duration.toMillis(Retry.maxServerRetryAfter)).toBe(yearMillis)
    expect(millis({ "retry-after-ms": "1e308" })).toBe(yearMillis)
    expect(millis({ "retry-after": "1e300" })).toBe(yearMillis)
    expect(millis({ "retry-after": "Fri, 31 Dec 9999 23:59:59 GMT" })).toBe(yearMillis)
    expect(millis({ "retry-after-ms": String(yearMillis - 1) })).toBe(yearMillis - 1)
  })
})

describe("Retry.problem", () => {
  const durationMessage = (option: string, got: string) =>
    `the retry.${option} option is not a duration: expected a non-negative duration such as "30 seconds", "500 millis" or a number of milliseconds, got ${got}`

  it("accepts no options and valid ones", () => {
    expect(Retry.problem(undefined)).toBeUndefined()
    expect(Retry.problem({})).toBeUndefined()
    expect(Retry.problem({ maxRetries: 0, initialDelay: "1 second", maxDelay: 5000, maxRetryAfter: "1 minute" }))
      .toBeUndefined()
  })

  it("names a retry count that is not a non-negative integer", () => {
    expect(Retry.problem({ maxRetries: -1 })).toBe("the retry.maxRetries option must be a non-negative integer, got -1")
    expect(Retry.problem({ maxRetries: 1.5 })).toBe(
      "the retry.maxRetries option must be a non-negative integer, got 1.5"
    )
    expect(Retry.problem({ maxRetries: Symbol("three") as unknown as number })).toBe(
      "the retry.maxRetries option must be a non-negative integer, got Symbol(three)"
    )
  })

  it("names each duration option that is not a duration", () => {
    expect(Retry.problem({ initialDelay: "2s" as Duration.DurationInput })).toBe(
      durationMessage("initialDelay", "\"2s\"")
    )
    expect(Retry.problem({ maxDelay: -1 })).toBe(durationMessage("maxDelay", "-1"))
    expect(Retry.problem({ maxRetryAfter: "later" as Duration.DurationInput })).toBe(
      durationMessage("maxRetryAfter", "\"later\"")
    )
  })
})
