/**
 * The retry policy shared by every backend: exponential backoff with jitter on
 * transient errors, and the provider's Retry-After honoured up to a cap. This
 * module holds the options a layer takes and their defaults; the policy itself
 * runs in `internal/retry.ts`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"

/**
 * How a backend retries.
 *
 * @since 0.1.0
 */
export interface RetryOptions {
  /** Retries after the first attempt (default: 3). 0 turns retrying off. */
  readonly maxRetries?: number | undefined
  /** The first backoff delay (default: 2 s); it doubles each retry. */
  readonly initialDelay?: Duration.DurationInput | undefined
  /** The longest backoff delay. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /**
   * The longest Retry-After we wait for. A provider asking for longer fails
   * the call at once with `LlmRateLimitError`, so fallback can move on.
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
}

/**
 * The policy of a layer that sets no retry options: 3 retries after 2 s, 4 s, 8 s (each ±20% jitter).
 *
 * @since 0.1.0
 */
export const defaults: {
  readonly maxRetries: number
  readonly initialDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxRetryAfter: Duration.Duration
} = {
  maxRetries: 3,
  initialDelay: Duration.seconds(2),
  maxDelay: Duration.seconds(10),
  maxRetryAfter: Duration.seconds(30)
}
