import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { isLlmError, isTransient, LlmError, LlmTimeoutError } from "../src/errors.js"
import { connectionError, fromProviderFailure } from "../src/internal/errorFactory.js"
import * as Retry from "../src/internal/retry.js"

const context = { provider: "openai", model: "gpt-4o", requestId: "req_1", apiKeyEnv: "OPENAI_API_KEY" }

describe("fromProviderFailure maps every status of WIRE.md section 4", () => {
  const cases: ReadonlyArray<readonly [number, string | undefined, string, boolean]> = [
    [400, "invalid_request_error", "LlmInvalidRequestError", false],
    [401, "authentication_error", "LlmAuthenticationError", false],
    [402, "billing_error", "LlmInvalidRequestError", false],
    [403, "permission_error", "LlmAuthenticationError", false],
    [404, "not_found_error", "LlmInvalidRequestError", false],
    [408, undefined, "LlmProviderError", true],
    [409, undefined, "LlmProviderError", true],
    [413, "request_too_large", "LlmInvalidRequestError", false],
    [422, undefined, "LlmInvalidRequestError", false],
    [429, "rate_limit_error", "LlmRateLimitError", true],
    [429, "insufficient_quota", "LlmInvalidRequestError", false],
    [500, "api_error", "LlmProviderError", true],
    [502, undefined, "LlmProviderError", true],
    [503, undefined, "LlmProviderError", true],
    [504, "timeout_error", "LlmProviderError", true],
    [529, "overloaded_error", "LlmProviderError", true]
  ]
  it.each(cases)("HTTP %i %s -> %s (transient: %s)", (status, type, tag, transient) => {
    const error = fromProviderFailure(context, { status, type, message: "something" })
    expect(error._tag).toBe(tag)
    expect(isTransient(error)).toBe(transient)
    expect(error.status).toBe(status)
    expect(error.requestId).toBe("req_1")
    expect(error.provider).toBe("openai")
    expect(error.model).toBe("gpt-4o")
    expect(error.message).toContain("something")
  })

  it("treats a context-length 400 as an invalid request", () => {
    const error = fromProviderFailure(context, { status: 400, code: "context_length_exceeded", message: "too long" })
    expect(error._tag).toBe("LlmInvalidRequestError")
  })

  it("names the env var, not the key, in authentication errors", () => {
    const error = fromProviderFailure(context, { status: 401, message: "Incorrect API key provided" })
    expect(error.message).toContain("OPENAI_API_KEY")
  })

  it("keeps Retry-After on rate limits and provider errors", () => {
    const limited = fromProviderFailure(context, { status: 429, retryAfter: Duration.seconds(3) })
    expect(limited._tag === "LlmRateLimitError" && Duration.toMillis(limited.retryAfter!)).toBe(3000)
    const busy = fromProviderFailure(context, { status: 503, retryAfter: Duration.seconds(1) })
    expect(busy._tag === "LlmProviderError" && Duration.toMillis(busy.retryAfter!)).toBe(1000)
  })

  it("classifies in-band stream errors without a status by their type", () => {
    expect(fromProviderFailure(context, { type: "overloaded_error" })._tag).toBe("LlmProviderError")
    expect(fromProviderFailure(context, { type: "api_error" })._tag).toBe("LlmProviderError")
    expect(fromProviderFailure(context, { type: "server_error" })._tag).toBe("LlmProviderError")
    expect(fromProviderFailure(context, { type: "rate_limit_error" })._tag).toBe("LlmRateLimitError")
    expect(fromProviderFailure(context, { type: "invalid_request_error" })._tag).toBe("LlmInvalidRequestError")
  })

  it("honours x-should-retry: true on an otherwise final status", () => {
    expect(fromProviderFailure(context, { status: 400, shouldRetry: true })._tag).toBe("LlmProviderError")
  })
})

describe("connection errors", () => {
  it("finds the system error code anywhere in the cause chain", () => {
    const nested = { message: "fetch failed", cause: { cause: { code: "ECONNREFUSED" } } }
    const error = connectionError(context, nested, "before the response")
    expect(error.reason).toBe("refused")
    expect(error.message).toContain("ECONNREFUSED")
    expect(connectionError(context, { code: "ECONNRESET" }, "mid-stream").reason).toBe("reset")
    expect(connectionError(context, { code: "ENOTFOUND" }, "x").reason).toBe("dns")
    expect(connectionError(context, new Error("?"), "x").reason).toBe("other")
    expect(isTransient(error)).toBe(true)
  })
})

describe("errors are data", () => {
  it("encode to JSON and back, and are recognised by isLlmError", () => {
    const error = new LlmTimeoutError({
      provider: "local",
      model: "m",
      kind: "idle",
      timeout: Duration.millis(250),
      message: "slow"
    })
    const encoded = Schema.encodeSync(LlmError)(error)
    expect(encoded).toMatchObject({ _tag: "LlmTimeoutError", kind: "idle", timeout: 250 })
    const decoded = Schema.decodeUnknownSync(LlmError)(JSON.parse(JSON.stringify(encoded)))
    expect(decoded).toBeInstanceOf(LlmTimeoutError)
    expect(isLlmError(decoded)).toBe(true)
    expect(isLlmError(new Error("x"))).toBe(false)
  })
})

describe("Retry-After parsing", () => {
  const now = Date.parse("2026-11-25T10:00:00Z")
  it("prefers retry-after-ms, then seconds, then an HTTP date", () => {
    expect(Duration.toMillis(Retry.parseRetryAfter({ "retry-after-ms": "1500", "retry-after": "9" }, now)!)).toBe(1500)
    expect(Duration.toMillis(Retry.parseRetryAfter({ "retry-after": "2" }, now)!)).toBe(2000)
    expect(Duration.toMillis(Retry.parseRetryAfter({ "retry-after": "Wed, 25 Nov 2026 10:00:05 GMT" }, now)!)).toBe(
      5000
    )
    expect(Retry.parseRetryAfter({ "retry-after": "soon" }, now)).toBeUndefined()
    expect(Retry.parseRetryAfter({}, now)).toBeUndefined()
  })

  it("retries only transient errors whose Retry-After is within the cap", () => {
    const policy = Retry.resolve({ maxRetryAfter: "5 seconds" })
    const retryable = Retry.isRetryable(policy)
    expect(retryable(fromProviderFailure(context, { status: 429, retryAfter: Duration.seconds(5) }))).toBe(true)
    expect(retryable(fromProviderFailure(context, { status: 429, retryAfter: Duration.seconds(6) }))).toBe(false)
    expect(retryable(fromProviderFailure(context, { status: 400 }))).toBe(false)
  })
})
