/**
 * The typed failures of every `Llm` call: one class per kind of failure, the
 * `LlmError` union, and `isLlmError` / `isTransient`. What a status code, an
 * error body or an in-band stream error means is decided in one place,
 * `internal/errorFactory.ts`.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { Usage } from "./Usage.js"

/** The fields every `LlmError` carries. */
const common = {
  /** The backend that failed ("openai", "anthropic", "local", ...). */
  provider: Schema.String,
  /** The model the request was for. */
  model: Schema.String,
  /** A human-readable explanation; never contains an API key. */
  message: Schema.String,
  /** The HTTP status, when the server answered with one. */
  status: Schema.optional(Schema.Number),
  /** The provider's request id (`x-request-id`, `request-id`), when given. */
  requestId: Schema.optional(Schema.String),
  /** The provider's own error type or code (`overloaded_error`, `insufficient_quota`, ...). */
  errorType: Schema.optional(Schema.String),
  /** The text a stream had already delivered when it failed. */
  partialText: Schema.optional(Schema.String),
  /**
   * What the failed call was billed for, as its provider reported it before
   * failing (a stream cut off after its usage chunk, an Anthropic stream that
   * failed after `message_start`), summed over its attempts; absent when none
   * reported any.
   */
  usage: Schema.optional(Usage)
}

/**
 * The server could not be reached or dropped the connection: refused, reset,
 * DNS failure, socket closed mid-stream.
 *
 * @since 0.1.0
 */
export class LlmConnectionError extends Schema.TaggedError<LlmConnectionError>("effect-llm/LlmConnectionError")(
  "LlmConnectionError",
  {
    ...common,
    /** `refused` means nothing listens there: fallback may move on at once. */
    reason: Schema.Literal("refused", "reset", "dns", "other")
  }
) {}

/**
 * Which of the three deadlines ran out.
 *
 * @since 0.1.0
 */
export const TimeoutKind = Schema.Literal("total", "firstToken", "idle")

/**
 * Which of the three deadlines ran out.
 *
 * @since 0.1.0
 */
export type TimeoutKind = typeof TimeoutKind.Type

/**
 * A deadline ran out: the whole request (`total`), the wait for the first
 * content event (`firstToken`), or the gap between content events (`idle`).
 *
 * @since 0.1.0
 */
export class LlmTimeoutError extends Schema.TaggedError<LlmTimeoutError>("effect-llm/LlmTimeoutError")(
  "LlmTimeoutError",
  {
    ...common,
    kind: TimeoutKind,
    /** The deadline that ran out. */
    timeout: Schema.DurationFromMillis
  }
) {}

/**
 * Which shared rate limit refused a call before it was sent (see the
 * `rateLimit` option of the provider layers): `requests` or `tokens` (the
 * budget would not allow it within its deadline), or `retryAfter` (a 429's
 * Retry-After, seen by this or another process, still holds the backend).
 *
 * @since 0.1.0
 */
export const RateLimitKind = Schema.Literal("requests", "tokens", "retryAfter")

/**
 * Which shared rate limit refused a call before it was sent.
 *
 * @since 0.1.0
 */
export type RateLimitKind = typeof RateLimitKind.Type

/**
 * The provider rate-limited the request (HTTP 429, in-band `rate_limit_error`),
 * or the backend's shared rate limit refused to send it (`limit` says which).
 *
 * @since 0.1.0
 */
export class LlmRateLimitError extends Schema.TaggedError<LlmRateLimitError>("effect-llm/LlmRateLimitError")(
  "LlmRateLimitError",
  {
    ...common,
    /**
     * How long the provider asked us to wait (`retry-after-ms`, `retry-after`),
     * or, for a call the rate limit refused, how long until it would allow it.
     */
    retryAfter: Schema.optional(Schema.DurationFromMillis),
    /**
     * Set when nothing was sent: the backend's shared rate limit refused the
     * call. Such a call is not retried by the backend (it already waited as
     * long as its deadline allows); a fallback moves on.
     */
    limit: Schema.optional(RateLimitKind)
  }
) {}

/**
 * The provider failed on its side: 5xx, 529, in-band overloaded or server errors.
 *
 * @since 0.1.0
 */
export class LlmProviderError extends Schema.TaggedError<LlmProviderError>("effect-llm/LlmProviderError")(
  "LlmProviderError",
  {
    ...common,
    /** How long the provider asked us to wait, when it said. */
    retryAfter: Schema.optional(Schema.DurationFromMillis)
  }
) {}

/**
 * The provider refused the credentials (401/403). The message names the
 * environment variable to set, never the key.
 *
 * @since 0.1.0
 */
export class LlmAuthenticationError extends Schema.TaggedError<LlmAuthenticationError>(
  "effect-llm/LlmAuthenticationError"
)("LlmAuthenticationError", common) {}

/**
 * The request cannot succeed as it is: rejected by the provider (400, 404, 413,
 * 422, context length, quota or billing) or refused before sending.
 *
 * A context-length error of any backend has `reason: "contextOverflow"`
 * and, when the server said, the prompt's size, the context's and the output
 * room asked for, in the server's tokens (see `isContextOverflow`).
 *
 * @since 0.1.0
 */
export class LlmInvalidRequestError extends Schema.TaggedError<LlmInvalidRequestError>(
  "effect-llm/LlmInvalidRequestError"
)("LlmInvalidRequestError", {
  ...common,
  /** `contextOverflow`: the prompt (with the output it asks for) does not fit the model's context. */
  reason: Schema.optional(Schema.Literal("contextOverflow")),
  /** The prompt's size in the server's tokens, when the server said. */
  promptTokens: Schema.optional(Schema.Number),
  /** The size of the context (the model's, or the slot's on a local server), when the server said. */
  contextTokens: Schema.optional(Schema.Number),
  /** The room for output the request asked for (its max tokens), when the server said: it counts against the context too. */
  requestedOutputTokens: Schema.optional(Schema.Number)
}) {}

/**
 * The provider answered with something we cannot use: malformed JSON or SSE,
 * a stream cut off before its end, invalid tool-call arguments.
 *
 * @since 0.1.0
 */
export class LlmResponseError extends Schema.TaggedError<LlmResponseError>("effect-llm/LlmResponseError")(
  "LlmResponseError",
  common
) {}

/**
 * Every way an `Llm` call can fail.
 *
 * @since 0.1.0
 */
export const LlmError = Schema.Union(
  LlmConnectionError,
  LlmTimeoutError,
  LlmRateLimitError,
  LlmProviderError,
  LlmAuthenticationError,
  LlmInvalidRequestError,
  LlmResponseError
)

/**
 * Every way an `Llm` call can fail.
 *
 * @since 0.1.0
 */
export type LlmError = typeof LlmError.Type

const tags = new Set([
  "LlmConnectionError",
  "LlmTimeoutError",
  "LlmRateLimitError",
  "LlmProviderError",
  "LlmAuthenticationError",
  "LlmInvalidRequestError",
  "LlmResponseError"
])

/**
 * Whether a value is one of the `LlmError` classes.
 *
 * @since 0.1.0
 */
export const isLlmError = (u: unknown): u is LlmError => Predicate.hasProperty(u, "_tag") && tags.has(u._tag as string)

/**
 * Whether an error is a context overflow: the backend refused the request
 * because the prompt does not fit its context (llama-server's
 * `exceed_context_size_error`, OpenAI's `context_length_exceeded`,
 * Anthropic's "prompt is too long", vLLM's, Ollama's, LM Studio's and
 * OpenRouter's forms). Pruning the history is what helps; retrying as it
 * is does not.
 *
 * @since 0.1.0
 */
export const isContextOverflow = (u: unknown): u is LlmInvalidRequestError =>
  isLlmError(u) && u._tag === "LlmInvalidRequestError" && u.reason === "contextOverflow"

/**
 * Whether trying again (the same backend later, or another backend) may
 * succeed. Retry and fallback act on transient errors only.
 *
 * @since 0.1.0
 */
export const isTransient = (error: LlmError): boolean => {
  switch (error._tag) {
    case "LlmConnectionError":
    case "LlmTimeoutError":
    case "LlmRateLimitError":
    case "LlmProviderError":
      return true
    case "LlmAuthenticationError":
    case "LlmInvalidRequestError":
    case "LlmResponseError":
      return false
  }
}

/**
 * Why a reply is not a value of the Schema asked for: `invalid` (not JSON,
 * or not a value of the Schema), `refused` (the model or the provider's
 * filter refused: OpenAI's `refusal`, a `content_filter` finish, Anthropic's
 * `refusal` stop) or `truncated` (the reply stopped at the output limit
 * before its value was complete).
 *
 * @since 0.1.0
 */
export const OutputErrorReason = Schema.Literal("invalid", "refused", "truncated")

/**
 * Why a reply is not a value of the Schema asked for.
 *
 * @since 0.1.0
 */
export type OutputErrorReason = typeof OutputErrorReason.Type

/**
 * A reply that is not a value of the Schema asked for (`Llm.generateObject`,
 * `Llm.streamObject`): it carries the reply's raw text and, for an invalid
 * one, what the JSON parser or the Schema found wrong, formatted. Not an
 * `LlmError`: the backend answered, so retry and fallback do not act on it
 * (`repair` asks the model again).
 *
 * @since 0.1.0
 */
export class LlmOutputError extends Schema.TaggedError<LlmOutputError>("effect-llm/LlmOutputError")(
  "LlmOutputError",
  {
    /** The backend that answered. */
    provider: Schema.String,
    /** The model that answered. */
    model: Schema.String,
    /** A human-readable explanation: the reason, and for an invalid reply the problem found. */
    message: Schema.String,
    reason: OutputErrorReason,
    /** The reply's text, as received (the refusal's text for a refusal). */
    text: Schema.String,
    /** What the JSON parser or the Schema found wrong (formatted), for an invalid reply. */
    issue: Schema.optional(Schema.String),
    /** Model calls made: the first and each repair. */
    attempts: Schema.Number
  }
) {}
