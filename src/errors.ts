/**
 * The typed failures of every `Llm` call, and the one place that decides what a
 * status code, an error body or an in-band stream error means.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

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
  partialText: Schema.optional(Schema.String)
}

/**
 * The server could not be reached or dropped the connection: refused, reset,
 * DNS failure, socket closed mid-stream.
 */
export class LlmConnectionError extends Schema.TaggedError<LlmConnectionError>("effect-llm/LlmConnectionError")(
  "LlmConnectionError",
  {
    ...common,
    /** `refused` means nothing listens there: fallback may move on at once. */
    reason: Schema.Literal("refused", "reset", "dns", "other")
  }
) {}

/** Which of the three deadlines ran out. */
export const TimeoutKind = Schema.Literal("total", "firstToken", "idle")

/** @since 0.1.0 */
export type TimeoutKind = typeof TimeoutKind.Type

/**
 * A deadline ran out: the whole request (`total`), the wait for the first
 * content event (`firstToken`), or the gap between content events (`idle`).
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

/** The provider rate-limited the request (HTTP 429, in-band `rate_limit_error`). */
export class LlmRateLimitError extends Schema.TaggedError<LlmRateLimitError>("effect-llm/LlmRateLimitError")(
  "LlmRateLimitError",
  {
    ...common,
    /** How long the provider asked us to wait (`retry-after-ms`, `retry-after`). */
    retryAfter: Schema.optional(Schema.DurationFromMillis)
  }
) {}

/** The provider failed on its side: 5xx, 529, in-band overloaded or server errors. */
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
 */
export class LlmAuthenticationError extends Schema.TaggedError<LlmAuthenticationError>(
  "effect-llm/LlmAuthenticationError"
)("LlmAuthenticationError", common) {}

/**
 * The request cannot succeed as it is: rejected by the provider (400, 404, 413,
 * 422, context length, quota or billing) or refused before sending.
 */
export class LlmInvalidRequestError extends Schema.TaggedError<LlmInvalidRequestError>(
  "effect-llm/LlmInvalidRequestError"
)("LlmInvalidRequestError", common) {}

/**
 * The provider answered with something we cannot use: malformed JSON or SSE,
 * a stream cut off before its end, invalid tool-call arguments.
 */
export class LlmResponseError extends Schema.TaggedError<LlmResponseError>("effect-llm/LlmResponseError")(
  "LlmResponseError",
  common
) {}

/** Every way an `Llm` call can fail. */
export const LlmError = Schema.Union(
  LlmConnectionError,
  LlmTimeoutError,
  LlmRateLimitError,
  LlmProviderError,
  LlmAuthenticationError,
  LlmInvalidRequestError,
  LlmResponseError
)

/** @since 0.1.0 */
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

/** Whether a value is one of the `LlmError` classes. */
export const isLlmError = (u: unknown): u is LlmError => Predicate.hasProperty(u, "_tag") && tags.has(u._tag as string)

/**
 * Whether trying again (the same backend later, or another backend) may
 * succeed. Retry and fallback act on transient errors only.
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

/** Where an error happened, attached to every error built from a response. */
export interface ErrorContext {
  readonly provider: string
  readonly model: string
  readonly requestId?: string | undefined
  /** The environment variable holding the key, named in authentication errors. */
  readonly apiKeyEnv?: string | undefined
  /**
   * Values that must never appear in an error (the API key). A provider or a
   * proxy that echoes the key back in its error text gets it replaced by
   * `[redacted]` in every error built from that text.
   */
  readonly secrets?: ReadonlyArray<string> | undefined
}

/** Secrets shorter than this are not redacted: they could not be told apart from ordinary text. */
const minSecretLength = 4

/** Replaces every occurrence of the context's secrets (4 characters or more) in `text` by `[redacted]`. */
export const redactSecrets = (context: ErrorContext, text: string): string => {
  if (context.secrets === undefined) return text
  let out = text
  for (const secret of context.secrets) {
    if (secret.length >= minSecretLength && out.includes(secret)) out = out.split(secret).join("[redacted]")
  }
  return out
}

/** How much of a server's text an error quotes: a status error's message, anything else, a type or a header value. */
export const quoteLimits = { message: 500, text: 200, type: 100, header: 128 } as const

/**
 * The part of a server's text (a body, a stream chunk, tool arguments, a
 * header value) an error or a result may keep: the context's secrets are
 * redacted first, then the text is cut to `max` characters, marked by `…`.
 * In that order, a key echoed where the cut falls is never left half-visible.
 */
export const quote = (context: ErrorContext, text: string, max: number): string => {
  const redacted = redactSecrets(context, text)
  if (redacted.length <= max) return redacted
  // never split a surrogate pair
  const last = redacted.charCodeAt(max - 1)
  const end = last >= 0xd800 && last <= 0xdbff ? max - 1 : max
  return `${redacted.slice(0, end)}…`
}

/** What a provider said about a failure, from the status line, headers and body. */
export interface ProviderFailure {
  readonly status?: number | undefined
  /** `error.type` / `error.code` of the body, or the in-band event's error type. */
  readonly type?: string | undefined
  readonly code?: string | undefined
  readonly message?: string | undefined
  readonly retryAfter?: Duration.Duration | undefined
  /** `x-should-retry` when the server sent it. */
  readonly shouldRetry?: boolean | undefined
}

const quotaMarkers = /insufficient_quota|billing|credit_balance|quota_exceeded|exceeded your current quota/i
const contextMarkers =
  /context_length_exceeded|context length|context size|context window|maximum context|too many tokens|prompt is too long/i
/** What says the request itself is wrong, whatever the status. */
const rejectedMarkers = /invalid_request|not_found|request_too_large/
const overloadedTypes = new Set(["overloaded_error", "api_error", "server_error", "timeout_error", "unavailable_error"])

const base = (context: ErrorContext, failure: ProviderFailure, message: string) => ({
  provider: context.provider,
  model: context.model,
  message: redactSecrets(context, message),
  ...(failure.status === undefined ? {} : { status: failure.status }),
  ...(context.requestId === undefined ? {} : { requestId: quote(context, context.requestId, quoteLimits.header) }),
  ...(failure.type ?? failure.code ? { errorType: quote(context, (failure.type ?? failure.code)!, quoteLimits.type) } : {})
})

const describe = (context: ErrorContext, failure: ProviderFailure, fallback: string): string => {
  const where = `${context.provider} (${context.model})`
  const status = failure.status === undefined ? "" : ` HTTP ${failure.status}`
  const kind = failure.type ?? failure.code
  const detail = failure.message === undefined ? fallback : quote(context, failure.message, quoteLimits.message)
  return `${where}${status}${kind === undefined ? "" : ` ${quote(context, kind, quoteLimits.type)}`}: ${detail}`
}

/**
 * Turns what a provider said (status, error type or code, message, Retry-After)
 * into the matching `LlmError`. Used for HTTP error responses and for in-band
 * stream errors alike, so both are classified the same way.
 */
export const fromProviderFailure = (context: ErrorContext, failure: ProviderFailure): LlmError => {
  const status = failure.status
  const kind = `${failure.type ?? ""} ${failure.code ?? ""} ${failure.message ?? ""}`
  const withRetryAfter = failure.retryAfter === undefined ? {} : { retryAfter: failure.retryAfter }

  if (status === 401 || status === 403 || /authentication_error|permission_error|invalid_api_key/.test(kind)) {
    const hint = context.apiKeyEnv === undefined ? "check the API key" : `set ${context.apiKeyEnv} to a valid key`
    return new LlmAuthenticationError(
      base(context, failure, describe(context, failure, "the credentials were refused") + ` (${hint})`)
    )
  }
  if (quotaMarkers.test(kind)) {
    return new LlmInvalidRequestError(
      base(context, failure, describe(context, failure, "quota or billing limit reached; retrying will not help"))
    )
  }
  if (status === 429 || /rate_limit/.test(kind)) {
    return new LlmRateLimitError({
      ...base(context, failure, describe(context, failure, "rate limited")),
      ...withRetryAfter
    })
  }
  if (failure.shouldRetry === true || (status !== undefined && (status >= 500 || status === 408 || status === 409))) {
    return new LlmProviderError({
      ...base(context, failure, describe(context, failure, "the provider failed")),
      ...withRetryAfter
    })
  }
  const rejected = contextMarkers.test(kind) || rejectedMarkers.test(kind)
  if (status === undefined && (failure.type === undefined ? !rejected : overloadedTypes.has(failure.type))) {
    // An in-band stream error with no status: overloaded and server errors are transient, and so is one that
    // gives no type (`{"error": "text"}`) unless its text says the request itself is wrong (context length, ...).
    return new LlmProviderError({
      ...base(context, failure, describe(context, failure, "the provider failed mid-stream")),
      ...withRetryAfter
    })
  }
  if (status !== undefined && status >= 300 && status < 400) {
    // never followed: a redirect to another origin would carry the API key there
    return new LlmResponseError(
      base(
        context,
        failure,
        `${context.provider} (${context.model}) HTTP ${status}: the server redirected the request; redirects are not followed, so the API key is never sent to another address (set the base URL to the final address)`
      )
    )
  }
  if (rejected || (status !== undefined && status >= 400 && status < 500)) {
    return new LlmInvalidRequestError(base(context, failure, describe(context, failure, "the request was rejected")))
  }
  return new LlmResponseError(base(context, failure, describe(context, failure, "unexpected response")))
}

/** A `LlmResponseError` for a response we cannot use. */
export const responseError = (context: ErrorContext, message: string, status?: number): LlmResponseError =>
  new LlmResponseError(base(context, { status }, `${context.provider} (${context.model}): ${message}`))

/** A `LlmInvalidRequestError` for input refused before anything is sent. */
export const invalidRequest = (context: ErrorContext, message: string): LlmInvalidRequestError =>
  new LlmInvalidRequestError({
    provider: context.provider,
    model: context.model,
    message: `${context.provider} (${context.model}): invalid request, nothing was sent: ${message}`
  })

/** Finds the system error code (`ECONNREFUSED`, ...) anywhere in a cause chain. */
const errorCodeOf = (cause: unknown): string | undefined => {
  for (let current = cause, depth = 0; current !== null && typeof current === "object" && depth < 6; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

const connectionReason = (code: string | undefined): LlmConnectionError["reason"] => {
  switch (code) {
    case "ECONNREFUSED":
      return "refused"
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
    case "UND_ERR_CLOSED":
      return "reset"
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "dns"
    default:
      return "other"
  }
}

/**
 * A `LlmConnectionError` from a transport failure, classified by the system
 * error code found in its cause chain (`ECONNREFUSED` -> refused, ...).
 */
export const connectionError = (context: ErrorContext, cause: unknown, during: string): LlmConnectionError => {
  const code = errorCodeOf(cause)
  const reason = connectionReason(code)
  return new LlmConnectionError({
    provider: context.provider,
    model: context.model,
    reason,
    message: `${context.provider} (${context.model}): connection ${reason === "other" ? "failed" : reason} ${during}${
      code === undefined ? "" : ` (${code})`
    }`,
    ...(context.requestId === undefined ? {} : { requestId: quote(context, context.requestId, quoteLimits.header) })
  })
}

/** The same error, noting the text the consumer had already received. */
export const withPartialText = <E extends LlmError>(error: E, partialText: string): E => {
  const { _tag: _, ...fields } = error as E & Record<string, unknown>
  const Class = error.constructor as new(fields: object) => E
  return new Class({ ...fields, message: error.message, partialText })
}
