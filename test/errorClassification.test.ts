/**
 * Error classification and the error builders at their edges (issue 13,
 * mutation testing): every marker that decides a class, the status
 * boundaries (3xx, 4xx, 5xx, 408, 409), in-band errors without a status,
 * the exact messages, the quoting limits and the surrogate-safe cut, secret
 * redaction's length floor, the cause-chain walk of connection errors, and
 * errors.ts's tags, transience and schema identifiers. Pure functions: tested
 * directly (the loopback view is in errors.test.ts and errorShapes.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import * as Errors from "../src/errors.js"
import {
  connectionError,
  type ErrorContext,
  fromProviderFailure,
  invalidRequest,
  type ProviderFailure,
  quote,
  quoteLimits,
  redactSecrets,
  responseError,
  withPartialText
} from "../src/internal/errorFactory.js"

const context: ErrorContext = { provider: "openai", model: "gpt", apiKeyEnv: "OPENAI_API_KEY" }
const bare: ErrorContext = { provider: "local", model: "m" }
const tag = (failure: ProviderFailure, where: ErrorContext = bare) => fromProviderFailure(where, failure)._tag

describe("fromProviderFailure: what decides the class", () => {
  it("reads authentication from 401, 403 or the body's markers, with the env var or a generic hint", () => {
    for (
      const failure of [
        { status: 401 },
        { status: 403 },
        { type: "authentication_error" },
        { code: "invalid_api_key" },
        {
          message: "permission_error: no"
        }
      ]
    ) expect(tag(failure)).toBe("LlmAuthenticationError")
    expect(fromProviderFailure(context, { status: 401 }).message).toBe(
      "openai (gpt) HTTP 401: the credentials were refused (set OPENAI_API_KEY to a valid key)"
    )
    expect(fromProviderFailure(bare, { status: 403, type: "permission_error", message: "denied" }).message).toBe(
      "local (m) HTTP 403 permission_error: denied (check the API key)"
    )
  })

  it("reads quota and billing from any of their markers, in any case, as final", () => {
    for (
      const text of [
        "insufficient_quota",
        "billing",
        "credit_balance",
        "quota_exceeded",
        "You exceeded your current quota",
        "BILLING"
      ]
    ) {
      expect(tag({ status: 429, message: text })).toBe("LlmInvalidRequestError")
      expect(tag({ status: 429, type: text })).toBe("LlmInvalidRequestError")
      expect(tag({ status: 429, code: text })).toBe("LlmInvalidRequestError")
    }
    expect(fromProviderFailure(bare, { status: 429, type: "insufficient_quota" }).message).toBe(
      "local (m) HTTP 429 insufficient_quota: quota or billing limit reached; retrying will not help"
    )
  })

  it("reads a rate limit from 429 or rate_limit, keeping Retry-After", () => {
    const limited = fromProviderFailure(bare, { status: 429, retryAfter: Duration.seconds(2) })
    expect(limited).toBeInstanceOf(Errors.LlmRateLimitError)
    expect(limited.message).toBe("local (m) HTTP 429: rate limited")
    expect((limited as Errors.LlmRateLimitError).retryAfter).toEqual(Duration.seconds(2))
    expect(tag({ status: 400, code: "rate_limit_exceeded" })).toBe("LlmRateLimitError")
    expect("retryAfter" in fromProviderFailure(bare, { status: 429 })).toBe(false)
  })

  it("reads a provider failure from 5xx, 408, 409 or x-should-retry, keeping Retry-After", () => {
    for (const status of [500, 599, 408, 409]) expect(tag({ status })).toBe("LlmProviderError")
    for (const status of [499, 407, 410]) expect(tag({ status })).toBe("LlmInvalidRequestError")
    expect(tag({ status: 400, shouldRetry: true })).toBe("LlmProviderError")
    expect(tag({ status: 500, shouldRetry: false })).toBe("LlmProviderError")
    expect(tag({ status: 400, shouldRetry: false })).toBe("LlmInvalidRequestError")
    const busy = fromProviderFailure(bare, { status: 503, retryAfter: Duration.seconds(1) })
    expect(busy.message).toBe("local (m) HTTP 503: the provider failed")
    expect((busy as Errors.LlmProviderError).retryAfter).toEqual(Duration.seconds(1))
    expect("retryAfter" in fromProviderFailure(bare, { status: 503 })).toBe(false)
  })

  it("reads an in-band error without a status by its type, or by its text when it has none", () => {
    for (const type of ["overloaded_error", "api_error", "server_error", "timeout_error", "unavailable_error"]) {
      expect(tag({ type })).toBe("LlmProviderError")
    }
    expect(tag({ type: "some_error" })).toBe("LlmResponseError")
    expect(tag({ type: "invalid_request_error" })).toBe("LlmInvalidRequestError")
    expect(tag({ message: "upstream hiccup" })).toBe("LlmProviderError")
    expect(tag({ code: "server_error" })).toBe("LlmProviderError")
    const inBand = fromProviderFailure(bare, { type: "overloaded_error", retryAfter: Duration.seconds(4) })
    expect(inBand.message).toBe("local (m) overloaded_error: the provider failed mid-stream")
    expect((inBand as Errors.LlmProviderError).retryAfter).toEqual(Duration.seconds(4))
    expect("retryAfter" in fromProviderFailure(bare, { type: "overloaded_error" })).toBe(false)
  })

  it("reads a request the text says is wrong as final, whatever the status or the lack of one", () => {
    for (
      const text of [
        "context_length_exceeded",
        "the context length is 8192",
        "exceeds the context size",
        "CONTEXT WINDOW full",
        "maximum context reached",
        "too many tokens",
        "prompt is too long",
        "invalid_request",
        "not_found",
        "request_too_large"
      ]
    ) {
      expect(tag({ message: text })).toBe("LlmInvalidRequestError")
      expect(tag({ status: 200, message: text })).toBe("LlmInvalidRequestError")
    }
    expect(tag({ code: "context_length_exceeded" })).toBe("LlmInvalidRequestError")
    expect(fromProviderFailure(bare, { status: 400 }).message).toBe("local (m) HTTP 400: the request was rejected")
  })

  it("refuses to follow a 3xx, and calls anything else unexpected", () => {
    for (const status of [300, 302, 399]) {
      const error = fromProviderFailure(bare, { status, message: "moved" })
      expect(error).toBeInstanceOf(Errors.LlmResponseError)
      expect(error.message).toBe(
        `local (m) HTTP ${status}: the server redirected the request; redirects are not followed, so the API key is never sent to another address (set the base URL to the final address)`
      )
    }
    const odd = fromProviderFailure(bare, { status: 200, message: "hmm" })
    expect(odd).toBeInstanceOf(Errors.LlmResponseError)
    expect(odd.message).toBe("local (m) HTTP 200: hmm")
    expect(fromProviderFailure(bare, { status: 299 }).message).toBe("local (m) HTTP 299: unexpected response")
  })
})

describe("the fields every built error carries", () => {
  it("keeps status, a quoted request id, and the type (or else the code) as errorType", () => {
    const error = fromProviderFailure({ ...bare, requestId: "r".repeat(200) }, { status: 500, code: "c".repeat(150) })
    expect(error.status).toBe(500)
    expect(error.requestId).toBe("r".repeat(quoteLimits.header) + "…")
    expect(error.errorType).toBe("c".repeat(quoteLimits.type) + "…")
    expect(error.message).toBe(`local (m) HTTP 500 ${"c".repeat(100)}…: the provider failed`)
    expect(fromProviderFailure(bare, { status: 500, type: "t", code: "c" }).errorType).toBe("t")
    const plain = fromProviderFailure(bare, { type: "overloaded_error" })
    expect(Object.keys(plain)).not.toContain("status")
    expect(Object.keys(plain)).not.toContain("requestId")
    expect(Object.keys(fromProviderFailure(bare, { status: 500 }))).not.toContain("errorType")
  })

  it("quotes the provider's message up to 500 characters", () => {
    const long = "m".repeat(600)
    expect(fromProviderFailure(bare, { status: 500, message: long }).message).toBe(
      `local (m) HTTP 500: ${"m".repeat(500)}…`
    )
    expect(quoteLimits).toEqual({ message: 500, text: 200, type: 100, header: 128 })
  })

  it("redacts the context's secrets everywhere, the key echoed in message, type and request id", () => {
    const secret = "sk-0123456789"
    const where = { ...bare, requestId: `req-${secret}`, secrets: [secret] }
    const error = fromProviderFailure(where, { status: 401, type: `bad ${secret}`, message: `key ${secret} refused` })
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(secret)
    expect(error.message).toBe("local (m) HTTP 401 bad [redacted]: key [redacted] refused (check the API key)")
    expect(error.requestId).toBe("req-[redacted]")
    expect(responseError(where, `saw ${secret}`).message).toBe("local (m): saw [redacted]")
  })
})

describe("redactSecrets and quote", () => {
  it("redacts secrets of 4 characters or more, every occurrence, and leaves shorter ones", () => {
    expect(redactSecrets({ ...bare, secrets: ["abcd"] }, "abcd-abcd")).toBe("[redacted]-[redacted]")
    expect(redactSecrets({ ...bare, secrets: ["abc"] }, "abc")).toBe("abc")
    expect(redactSecrets({ ...bare, secrets: ["zzzz", "abcd"] }, "abcd")).toBe("[redacted]")
    expect(redactSecrets(bare, "abcd")).toBe("abcd")
  })

  it("keeps a text of exactly the limit, cuts a longer one, never between a surrogate pair", () => {
    expect(quote(bare, "abcde", 5)).toBe("abcde")
    expect(quote(bare, "abcdef", 5)).toBe("abcde…")
    // "😀" is \ud83d\ude00: a cut after the high surrogate moves before it
    expect(quote(bare, "abcd😀z", 5)).toBe("abcd…")
    expect(quote(bare, "abc😀z", 5)).toBe("abc😀…")
    expect(quote(bare, "abcd\ud800zz", 5)).toBe("abcd…")
    expect(quote(bare, "abcd\udbffzz", 5)).toBe("abcd…")
    expect(quote(bare, "abcd\udc00zz", 5)).toBe("abcd\udc00…")
    expect(quote(bare, "abcd\ud7ffzz", 5)).toBe("abcd\ud7ff…")
  })
})

describe("responseError and invalidRequest", () => {
  it("say where and what, with the status when given", () => {
    const error = responseError(bare, "no choices", 200)
    expect(error).toBeInstanceOf(Errors.LlmResponseError)
    expect(error.message).toBe("local (m): no choices")
    expect(error.status).toBe(200)
    const refused = invalidRequest(bare, "no messages")
    expect(refused).toBeInstanceOf(Errors.LlmInvalidRequestError)
    expect(refused.message).toBe("local (m): invalid request, nothing was sent: no messages")
    expect([refused.provider, refused.model]).toEqual(["local", "m"])
  })
})

describe("connectionError", () => {
  it("classifies every system code it knows", () => {
    const reasons: ReadonlyArray<readonly [string, string]> = [
      ["ECONNREFUSED", "refused"],
      ["ECONNRESET", "reset"],
      ["EPIPE", "reset"],
      ["UND_ERR_SOCKET", "reset"],
      ["UND_ERR_CLOSED", "reset"],
      ["ENOTFOUND", "dns"],
      ["EAI_AGAIN", "dns"],
      ["ETIMEDOUT", "other"]
    ]
    for (const [code, reason] of reasons) expect(connectionError(bare, { code }, "x").reason).toBe(reason)
  })

  it("says what happened when, with the code, and the quoted request id", () => {
    const refused = connectionError(bare, { code: "ECONNREFUSED" }, "before the response")
    expect(refused.message).toBe("local (m): connection refused before the response (ECONNREFUSED)")
    const other = connectionError({ ...bare, requestId: "r1" }, new Error("boom"), "mid-stream")
    expect(other.message).toBe("local (m): connection failed mid-stream")
    expect(other.requestId).toBe("r1")
    expect(Object.keys(refused)).not.toContain("requestId")
    expect(connectionError(bare, { code: "ETIMEDOUT" }, "x").message).toBe("local (m): connection failed x (ETIMEDOUT)")
  })

  it("walks the cause chain up to 6 levels, past causes whose code is not a string", () => {
    const nest = (depth: number): object => depth === 0 ? { code: "ECONNRESET" } : { code: 42, cause: nest(depth - 1) }
    expect(connectionError(bare, nest(5), "x").reason).toBe("reset")
    expect(connectionError(bare, nest(6), "x").reason).toBe("other")
    expect(connectionError(bare, { cause: null }, "x").reason).toBe("other")
    expect(connectionError(bare, "ECONNRESET", "x").reason).toBe("other")
  })
})

describe("withPartialText", () => {
  it("keeps the class, the fields and the message, and adds the text delivered", () => {
    const error = fromProviderFailure({ ...bare, requestId: "r" }, { status: 503, retryAfter: Duration.seconds(1) })
    const partial = withPartialText(error, "Hello")
    expect(partial).toBeInstanceOf(Errors.LlmProviderError)
    expect(partial.partialText).toBe("Hello")
    expect(partial.message).toBe(error.message)
    expect({ ...partial }).toEqual({ ...error, partialText: "Hello" })
  })
})

describe("errors.ts", () => {
  // built in each test, so a class that refuses its fields fails that test, not the file's collection
  const instances = (): ReadonlyArray<readonly [Errors.LlmError, boolean]> => [
    [new Errors.LlmConnectionError({ provider: "p", model: "m", message: "x", reason: "reset" }), true],
    [
      new Errors.LlmTimeoutError({
        provider: "p",
        model: "m",
        message: "x",
        kind: "total",
        timeout: Duration.seconds(1)
      }),
      true
    ],
    [new Errors.LlmRateLimitError({ provider: "p", model: "m", message: "x" }), true],
    [new Errors.LlmProviderError({ provider: "p", model: "m", message: "x" }), true],
    [new Errors.LlmAuthenticationError({ provider: "p", model: "m", message: "x" }), false],
    [new Errors.LlmInvalidRequestError({ provider: "p", model: "m", message: "x" }), false],
    [new Errors.LlmResponseError({ provider: "p", model: "m", message: "x" }), false]
  ]

  it("tells transient errors from final ones, and recognises every class by its tag", () => {
    for (const [error, transient] of instances()) {
      expect([error._tag, Errors.isTransient(error)]).toEqual([error._tag, transient])
      expect(Errors.isLlmError(error)).toBe(true)
      expect(Errors.isLlmError({ _tag: error._tag })).toBe(true)
    }
    expect(Errors.isLlmError({ _tag: "Other" })).toBe(false)
    expect(Errors.isLlmError(null)).toBe(false)
    expect(Errors.isLlmError("LlmResponseError")).toBe(false)
  })

  it("round-trips every class through JSON, and names each class's schema in a decode failure", () => {
    for (const [error] of instances()) {
      const decoded = Schema.decodeUnknownSync(Errors.LlmError)(
        JSON.parse(JSON.stringify(Schema.encodeSync(Errors.LlmError)(error)))
      )
      expect(decoded.constructor).toBe(error.constructor)
      expect({ ...decoded }).toEqual({ ...error })
      expect(() => Schema.decodeUnknownSync(Errors.LlmError)({ _tag: error._tag })).toThrow(`effect-llm/${error._tag}`)
    }
    expect(Errors.TimeoutKind.literals).toEqual(["total", "firstToken", "idle"])
  })
})
