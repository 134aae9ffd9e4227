/**
 * Reading a response: its whole body as text, its request id, and the
 * `LlmError` a non-2xx status stands for.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { LlmError } from "../errors.js"
import {
  connectionError,
  type ErrorContext,
  fromProviderFailure,
  type ProviderFailure,
  quote,
  quoteLimits,
  responseError
} from "./errorFactory.js"
import { parseRetryAfter } from "./retry.js"
import { requestIdHeaders, type Response } from "./transport.js"

/** The bound on an error response body read for its message. */
const maxErrorBodyBytes = 1024 * 1024

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The response's request id, redacted and bounded like any server text (a proxy may echo the key in it). */
export const requestIdOf = (
  context: ErrorContext,
  headers: Readonly<Record<string, string | undefined>>
): string | undefined => {
  for (const name of requestIdHeaders) {
    const value = headers[name]
    if (value !== undefined && value !== "") return quote(context, value, quoteLimits.header)
  }
  return undefined
}

/**
 * Reads a whole body as UTF-8 text and hands it to `then` in the same step,
 * failing past `limit` bytes (at once when its `content-length` says so) or
 * on invalid UTF-8.
 */
export const readTextThen = <A>(
  response: Response,
  context: ErrorContext,
  limit: number,
  then: (text: string) => Effect.Effect<A, LlmError>
): Effect.Effect<A, LlmError> =>
  Effect.matchEffect(response.bytes(limit), {
    onFailure: (error) =>
      Effect.fail(
        error.reason === "tooLarge"
          ? responseError(context, `the response body exceeds ${limit} bytes`, response.status)
          : connectionError(context, error.cause, "while reading the response")
      ),
    onSuccess: (body) => {
      let text: string
      try {
        text = utf8.decode(body)
      } catch {
        return Effect.fail(responseError(context, "the response body is not valid UTF-8", response.status))
      }
      return then(text)
    }
  })

/** Reads a whole body as UTF-8 text (see `readTextThen`). */
export const readText = (response: Response, context: ErrorContext, limit: number): Effect.Effect<string, LlmError> =>
  readTextThen(response, context, limit, Effect.succeed)

/**
 * The error a non-2xx response stands for, read from its status, headers and
 * body (at most 1 MiB of it, parsed as JSON when it is JSON); `readError` is
 * the codec's reading of the provider's error body.
 */
export const statusError = (
  response: Response,
  context: ErrorContext,
  readError: (body: unknown) => Pick<ProviderFailure, "type" | "code" | "message" | "promptTokens" | "contextTokens">
): Effect.Effect<LlmError> =>
  Effect.map(
    Effect.orElseSucceed(readText(response, context, maxErrorBodyBytes), () => ""),
    (text): LlmError => {
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON: keep the text (an HTML error page, a proxy's message)
      }
      const { headers } = response
      const shouldRetry = headers["x-should-retry"]
      return fromProviderFailure({ ...context, requestId: requestIdOf(context, headers) }, {
        status: response.status,
        ...readError(body),
        // an HTTP date is read against the wall clock, as the server wrote it
        retryAfter: parseRetryAfter(headers, Date.now()),
        shouldRetry: shouldRetry === "true" ? true : shouldRetry === "false" ? false : undefined
      })
    }
  )
