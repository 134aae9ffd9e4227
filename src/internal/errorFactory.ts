/**
 * Builds every `LlmError` from what went wrong: the one place that decides what
 * a status code, an error body, an in-band stream error or a transport failure
 * means, and that keeps secrets out of the messages. Codecs and the HTTP layer
 * use it; `WireCodec` re-exports the part a custom codec needs.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import {
  LlmAuthenticationError,
  LlmConnectionError,
  type LlmError,
  LlmInvalidRequestError,
  LlmProviderError,
  LlmRateLimitError,
  LlmResponseError
} from "../errors.js"
import { Usage } from "../Usage.js"
import { overflowOf } from "./contextOverflow.js"

/**
 * Where an error happened, attached to every error built from a response.
 *
 * @since 0.1.0
 */
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

/**
 * Replaces every occurrence of the context's secrets (4 characters or more) in `text` by `[redacted]`.
 *
 * @since 0.1.0
 */
export const redactSecrets = (context: ErrorContext, text: string): string => {
  if (context.secrets === undefined) return text
  let out = text
  for (const secret of context.secrets) {
    if (secret.length >= minSecretLength && out.includes(secret)) out = out.split(secret).join("[redacted]")
  }
  return out
}

/**
 * How much of a server's text an error quotes: a status error's message, anything else, a type or a header value.
 *
 * @since 0.1.0
 */
export const quoteLimits = { message: 500, text: 200, type: 100, header: 128 } as const

/**
 * The part of a server's text (a body, a stream chunk, tool arguments, a
 * header value) an error or a result may keep: the context's secrets are
 * redacted first, then the text is cut to `max` characters, marked by `…`.
 * In that order, a key echoed where the cut falls is never left half-visible.
 *
 * @since 0.1.0
 */
export const quote = (context: ErrorContext, text: string, max: number): string => {
  const redacted = redactSecrets(context, text)
  if (redacted.length <= max) return redacted
  // never split a surrogate pair
  const last = redacted.charCodeAt(max - 1)
  const end = last >= 0xd800 && last <= 0xdbff ? max - 1 : max
  return `${redacted.slice(0, end)}…`
}

/**
 * What a provider said about a failure, from the status line, headers and body.
 *
 * @since 0.1.0
 */
export interface ProviderFailure {
  readonly status?: number | undefined
  /** `error.type` / `error.code` of the body, or the in-band event's error type. */
  readonly type?: string | undefined
  readonly code?: string | undefined
  readonly message?: string | undefined
  readonly retryAfter?: Duration.Duration | undefined
  /** `x-should-retry` when the server sent it. */
  readonly shouldRetry?: boolean | undefined
  /** The prompt's size, when the body gave it as a field (llama-server's `n_prompt_tokens`). */
  readonly promptTokens?: number | undefined
  /** The context's size, when the body gave it as a field (llama-server's `n_ctx`). */
  readonly contextTokens?: number | undefined
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
  ...(failure.type ?? failure.code
    ? { errorType: quote(context, (failure.type ?? failure.code)!, quoteLimits.type) }
    : {})
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
 * stream errors alike, so both are classified the same way. A context-length
 * error, whatever its status, is `LlmInvalidRequestError` with `reason:
 * "contextOverflow"` and the sizes given.
 *
 * @since 0.1.0
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
  // a context overflow is final whatever the status (llama-server sent it as 500 for a while, OpenRouter relays an
  // upstream's as 502): the same prompt never fits
  const overflow = status === 429 ? undefined : overflowOf(failure)
  if (overflow !== undefined) {
    return new LlmInvalidRequestError({
      ...base(context, failure, describe(context, failure, "the prompt does not fit the model's context")),
      reason: "contextOverflow",
      ...(overflow.promptTokens === undefined ? {} : { promptTokens: overflow.promptTokens }),
      ...(overflow.contextTokens === undefined ? {} : { contextTokens: overflow.contextTokens }),
      ...(overflow.requestedOutputTokens === undefined ? {} : { requestedOutputTokens: overflow.requestedOutputTokens })
    })
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

/**
 * A `LlmResponseError` for a response we cannot use.
 *
 * @since 0.1.0
 */
export const responseError = (context: ErrorContext, message: string, status?: number): LlmResponseError =>
  new LlmResponseError(base(context, { status }, `${context.provider} (${context.model}): ${message}`))

/**
 * A `LlmInvalidRequestError` for input refused before anything is sent.
 *
 * @since 0.1.0
 */
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
 *
 * @since 0.1.0
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

/**
 * The same error, noting the text the consumer had already received.
 *
 * @since 0.1.0
 */
export const withPartialText = <E extends LlmError>(error: E, partialText: string): E => {
  const { _tag: _, ...fields } = error as E & Record<string, unknown>
  const Class = error.constructor as new(fields: object) => E
  return new Class({ ...fields, message: error.message, partialText })
}

/** The same error with `usage` added to what it was billed for (unchanged when `usage` is undefined). */
export const addUsage = <E extends LlmError>(error: E, usage: Usage | undefined): E => {
  if (usage === undefined) return error
  const { _tag: _, ...fields } = error as E & Record<string, unknown>
  const Class = error.constructor as new(fields: object) => E
  return new Class({
    ...fields,
    message: error.message,
    usage: error.usage === undefined ? usage : Usage.add(error.usage, usage)
  })
}
