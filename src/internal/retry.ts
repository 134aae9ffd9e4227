/**
 * The retry policy as it runs: options filled in from `Retry.defaults`, which
 * errors are retried, the `Schedule`, the Retry-After headers, and the switch
 * `Fallback` uses to skip retrying a refused connection.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import { isTransient, type LlmError } from "../errors.js"
import { defaults, type RetryOptions } from "../Retry.js"
import { durationProblem, isNonNegativeInteger } from "./validate.js"

export type {
  /**
   * How a backend retries, as `Retry` declares it.
   *
   * @since 0.1.0
   */
  RetryOptions
} from "../Retry.js"

/**
 * The retry settings with every field filled in.
 *
 * @since 0.1.0
 */
export interface ResolvedRetryOptions {
  readonly maxRetries: number
  readonly initialDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxRetryAfter: Duration.Duration
}

/**
 * Why retry options cannot be used, naming the option (undefined when they
 * can): a retry count that is not a non-negative integer, or a duration that
 * is not one. `resolve` expects options this accepts.
 *
 * @since 0.1.0
 */
export const problem = (options: RetryOptions | undefined): string | undefined => {
  if (options === undefined) return undefined
  const { maxRetries } = options
  if (maxRetries !== undefined && !isNonNegativeInteger(maxRetries)) {
    return `the retry.maxRetries option must be a non-negative integer, got ${
      JSON.stringify(maxRetries) ?? String(maxRetries)
    }`
  }
  for (const option of ["initialDelay", "maxDelay", "maxRetryAfter"] as const) {
    const found = durationProblem(options[option])
    if (found !== undefined) return `the retry.${option} option ${found}`
  }
  return undefined
}

/**
 * Fills in unset retry options from `defaults`.
 *
 * @since 0.1.0
 */
export const resolve = (options: RetryOptions | undefined): ResolvedRetryOptions => ({
  maxRetries: options?.maxRetries ?? defaults.maxRetries,
  initialDelay: options?.initialDelay === undefined ? defaults.initialDelay : Duration.decode(options.initialDelay),
  maxDelay: options?.maxDelay === undefined ? defaults.maxDelay : Duration.decode(options.maxDelay),
  maxRetryAfter: options?.maxRetryAfter === undefined
    ? defaults.maxRetryAfter
    : Duration.decode(options.maxRetryAfter)
})

/**
 * The wait a provider asked for, if the error carries one.
 *
 * @since 0.1.0
 */
export const retryAfterOf = (error: LlmError): Duration.Duration | undefined =>
  error._tag === "LlmRateLimitError" || error._tag === "LlmProviderError" ? error.retryAfter : undefined

/**
 * Whether `error` is the backend's own rate limit refusing a call before
 * anything was sent (a budget spent, a Retry-After held).
 *
 * @since 0.1.0
 */
export const refusedBeforeSending = (error: LlmError): boolean =>
  error._tag === "LlmRateLimitError" && error.limit !== undefined

/**
 * Whether the policy retries this error: it must be transient, not a
 * refusal of the backend's rate limit (which already waited as long as the
 * call's deadline allows), and any Retry-After it carries must be within
 * `maxRetryAfter`.
 *
 * @since 0.1.0
 */
export const isRetryable = (options: ResolvedRetryOptions) => (error: LlmError): boolean => {
  if (!isTransient(error) || refusedBeforeSending(error)) return false
  const retryAfter = retryAfterOf(error)
  return retryAfter === undefined || Duration.lessThanOrEqualTo(retryAfter, options.maxRetryAfter)
}

/**
 * Whether a refused connection is retried. `Fallback` turns this off while a
 * next backend is waiting, so a dead local server costs no backoff.
 *
 * @since 0.1.0
 */
export const retryRefusedConnections: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(true)

/**
 * The policy as a `Schedule` over failures: `Schedule.exponential` with
 * jitter, capped at `maxDelay`, at most `maxRetries` times, transient errors
 * only; a Retry-After from the provider replaces the backoff delay.
 *
 * @since 0.1.0
 */
export const schedule = (options: ResolvedRetryOptions): Schedule.Schedule<LlmError, LlmError> =>
  Schedule.exponential(options.initialDelay).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(options.maxRetries)),
    (self) => Schedule.passthrough(self as Schedule.Schedule<unknown, LlmError>),
    Schedule.modifyDelay((error: LlmError, delay) => retryAfterOf(error) ?? Duration.min(delay, options.maxDelay)),
    Schedule.whileInputEffect((error: LlmError) =>
      error._tag === "LlmConnectionError" && error.reason === "refused"
        ? FiberRef.get(retryRefusedConnections)
        : Effect.succeed(isRetryable(options)(error))
    )
  )

/**
 * A retry the policy granted: the attempt that failed (1 for the first),
 * its error, the wait before the next attempt, and when it was decided
 * (clock millis). What tracing and metrics record of a retry.
 */
export interface RetryNotice<E> {
  readonly attempt: number
  readonly error: E
  readonly delayMillis: number
  readonly atMillis: number
}

/**
 * A retry policy driven one failure at a time: `next` waits out the delay
 * the policy gives for `error`, or fails with `error` when the policy gives
 * up. The policy's state is made by the first `next`, so an attempt that
 * succeeds at once costs nothing.
 */
export interface Retrier<E> {
  readonly next: (error: E) => Effect.Effect<void, E>
}

/**
 * A `Retrier` over `policy`, for one call: the policy is stepped by hand (as
 * `Schedule.driver` steps it, on the Effect clock), so that `onRetry` hears
 * of each retry and its delay before the wait.
 */
export const retrier = <E>(
  policy: Schedule.Schedule<unknown, E>,
  onRetry?: ((notice: RetryNotice<E>) => void) | undefined
): Retrier<E> => {
  let state: unknown = policy.initial
  let failed = 0
  return {
    next: (error) =>
      Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        return Effect.flatMap(Effect.suspend(() => policy.step(now, error, state)), ([next, , decision]) => {
          state = next
          if (ScheduleDecision.isDone(decision)) return Effect.fail(error)
          const millis = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
          onRetry?.({ attempt: ++failed, error, delayMillis: millis, atMillis: now })
          return millis === 0 ? Effect.void : Effect.sleep(Duration.millis(millis))
        })
      })
  }
}

/**
 * `attempt`, run again after each failure while `policy` allows it; fails
 * with the last failure when it does not. The policy is only started by a
 * first failure (and fed that failure, so it decides exactly as
 * `Effect.retry(attempt, policy)` would): a call that succeeds at once pays
 * nothing for it. `onRetry` hears of each retry. Streams drive the same
 * policy through `retrier`.
 */
export const retrying = <E>(policy: Schedule.Schedule<unknown, E>) =>
<A, R>(
  attempt: Effect.Effect<A, E, R>,
  onRetry?: ((notice: RetryNotice<E>) => void) | undefined
): Effect.Effect<A, E, R> =>
  Effect.catchAll(attempt, (first) => {
    const retries = retrier(policy, onRetry)
    const again = (error: E): Effect.Effect<A, E, R> =>
      Effect.zipRight(retries.next(error), Effect.catchAll(attempt, again))
    return again(first)
  })

/**
 * The longest wait a server's Retry-After is taken to ask for: a longer one
 * (up to `1e308` milliseconds, which no `Duration` can print) is read as this.
 *
 * @since 0.1.0
 */
export const maxServerRetryAfter: Duration.Duration = Duration.days(365)

const maxServerRetryAfterMillis = Duration.toMillis(maxServerRetryAfter)

const clampedMillis = (millis: number): Duration.Duration =>
  Duration.millis(Math.min(millis, maxServerRetryAfterMillis))

/**
 * Reads `retry-after-ms` (milliseconds) or `retry-after` (seconds or an HTTP
 * date) from response headers, clamped to `maxServerRetryAfter`.
 *
 * @since 0.1.0
 */
export const parseRetryAfter = (
  headers: Readonly<Record<string, string | undefined>>,
  now: number
): Duration.Duration | undefined => {
  const ms = headers["retry-after-ms"]
  if (ms !== undefined) {
    const value = Number.parseFloat(ms)
    if (Number.isFinite(value) && value >= 0) return clampedMillis(value)
  }
  const retryAfter = headers["retry-after"]
  if (retryAfter === undefined) return undefined
  const seconds = Number(retryAfter)
  if (retryAfter.trim() !== "" && Number.isFinite(seconds)) {
    return seconds >= 0
      ? clampedMillis(seconds * 1000)
      : undefined
  }
  const date = Date.parse(retryAfter)
  return Number.isNaN(date) ? undefined : clampedMillis(Math.max(0, date - now))
}
