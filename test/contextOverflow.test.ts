/**
 * Context overflow (issue 17): every backend's context-length error becomes
 * one `LlmInvalidRequestError` with `reason: "contextOverflow"` and the sizes
 * the server gave, never retried. The bodies are those the servers send
 * (sources in test/fixtures/SOURCES.md, "Context overflow"), over loopback
 * against the fake provider, whole and streamed, and the streamed forms of
 * llama-server (a JSON error answer with `Connection: close`, at 400 or 200,
 * and the older `error:` SSE field) under several chunkings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import {
  isContextOverflow,
  LlmError,
  LlmInvalidRequestError,
  LlmProviderError,
  LlmRateLimitError
} from "../src/errors.js"
import * as Llm from "../src/Llm.js"
import * as LlmStream from "../src/Stream.js"
import type * as FakeProvider from "./support/FakeProvider.js"
import { chunkings, hi, type Protocol, raw, withServer } from "./support/replies.js"

/** What an error says about an overflow. */
const overflowOf = (error: LlmError) => ({
  tag: error._tag,
  reason: error._tag === "LlmInvalidRequestError" ? error.reason : undefined,
  promptTokens: error._tag === "LlmInvalidRequestError" ? error.promptTokens : undefined,
  contextTokens: error._tag === "LlmInvalidRequestError" ? error.contextTokens : undefined,
  requestedOutputTokens: error._tag === "LlmInvalidRequestError" ? error.requestedOutputTokens : undefined
})

/** How a call failed: its overflow fields and how many requests it took. */
const failure = <A>(server: FakeProvider.FakeProvider, effect: Effect.Effect<A, LlmError, Llm.Llm>) =>
  Effect.gen(function*() {
    server.clearRequests()
    const error = yield* Effect.flip(effect)
    return { ...overflowOf(error), requests: server.requests.length, error }
  })

interface Shape {
  readonly name: string
  readonly protocol: Protocol
  readonly status: number
  readonly body: object | string
  readonly promptTokens?: number
  readonly contextTokens?: number
  readonly requestedOutputTokens?: number
}

const llamaMessage = (prompt: number, ctx: number) =>
  `request (${prompt} tokens) exceeds the available context size (${ctx} tokens), try increasing it`

/** Each server's context-length error, as it sends it. */
const shapes: ReadonlyArray<Shape> = [
  {
    name: "llama-server (since late 2025): 400 exceed_context_size_error with n_prompt_tokens / n_ctx",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        code: 400,
        message: llamaMessage(9000, 8192),
        type: "exceed_context_size_error",
        n_prompt_tokens: 9000,
        n_ctx: 8192
      }
    },
    promptTokens: 9000,
    contextTokens: 8192
  },
  {
    name: "llama-server (Sep 2025): the same type at status 500, sizes only in the fields",
    protocol: "chat",
    status: 500,
    body: {
      error: {
        code: 500,
        message:
          "the request exceeds the available context size. try increasing the context size or enable context shift",
        type: "exceed_context_size_error",
        n_prompt_tokens: 1407,
        n_ctx: 256
      }
    },
    promptTokens: 1407,
    contextTokens: 256
  },
  {
    name: "llama-server (before Sep 2025): invalid_request_error, no sizes",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        code: 400,
        message:
          "the request exceeds the available context size, try increasing the context size or enable context shift",
        type: "invalid_request_error"
      }
    }
  },
  {
    name: "OpenAI: context_length_exceeded, your messages resulted in",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
        type: "invalid_request_error",
        param: "messages",
        code: "context_length_exceeded"
      }
    },
    promptTokens: 9000,
    contextTokens: 8192
  },
  {
    name: "OpenAI (older): the messages and the completion",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "This model's maximum context length is 4097 tokens. However, you requested 4120 tokens (3120 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        type: "invalid_request_error",
        param: "messages",
        code: "context_length_exceeded"
      }
    },
    promptTokens: 3120,
    contextTokens: 4097,
    requestedOutputTokens: 1000
  },
  {
    name: "OpenAI (context window wording): the code alone says it",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message: "Your input exceeds the context window of this model. Please adjust your input and try again.",
        type: "invalid_request_error",
        param: "input",
        code: "context_length_exceeded"
      }
    }
  },
  {
    name: "vLLM (flat body): you requested ... in the messages",
    protocol: "chat",
    status: 400,
    body: {
      object: "error",
      message:
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
      type: "BadRequestError",
      param: null,
      code: 400
    },
    promptTokens: 4000,
    contextTokens: 4096,
    requestedOutputTokens: 1000
  },
  {
    name: "vLLM: your request has N input tokens",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please reduce the length of the input messages. None",
        type: "BadRequestError",
        param: null,
        code: 400
      }
    },
    promptTokens: 5000,
    contextTokens: 4096
  },
  {
    name: "vLLM: max_tokens too large for the prompt",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778). None",
        type: "BadRequestError",
        param: null,
        code: 400
      }
    },
    promptTokens: 2778,
    contextTokens: 4096,
    requestedOutputTokens: 8000
  },
  {
    name: "vLLM (newest): your prompt contains at least N input tokens",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "This model's maximum context length is 4096 tokens. However, you requested 1000 output tokens and your prompt contains at least 3501 input tokens, for a total of at least 4501 tokens.",
        type: "BadRequestError",
        param: null,
        code: 400
      }
    },
    promptTokens: 3501,
    contextTokens: 4096,
    requestedOutputTokens: 1000
  },
  {
    name: "Ollama: the input length exceeds the context length",
    protocol: "chat",
    status: 400,
    body: { error: "the input length exceeds the context length" }
  },
  {
    name: "a proxy passing llama-server's body as the error string",
    protocol: "chat",
    status: 400,
    body: {
      error: JSON.stringify({
        error: {
          code: 400,
          message: llamaMessage(2622, 512),
          type: "exceed_context_size_error",
          n_prompt_tokens: 2622,
          n_ctx: 512
        }
      })
    },
    promptTokens: 2622,
    contextTokens: 512
  },
  {
    name: "OpenRouter: this endpoint's maximum context length, text input and output",
    protocol: "chat",
    status: 400,
    body: {
      error: {
        message:
          "This endpoint's maximum context length is 131072 tokens. However, you requested about 138956 tokens (7884 of text input, 131072 in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically.",
        code: 400
      }
    },
    promptTokens: 7884,
    contextTokens: 131072,
    requestedOutputTokens: 131072
  },
  {
    name: "OpenRouter: an upstream's overflow relayed as 502",
    protocol: "chat",
    status: 502,
    body: {
      error: {
        message: "Provider returned error",
        code: 502,
        metadata: {
          provider_name: "DeepInfra",
          raw:
            "{\"object\":\"error\",\"message\":\"This model's maximum context length is 16000 tokens. However, you requested 17165 tokens (13069 in the messages, 4096 in the completion). Please reduce the length of the messages or completion.\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}"
        }
      }
    },
    promptTokens: 13069,
    contextTokens: 16000,
    requestedOutputTokens: 4096
  },
  {
    name: "LM Studio: trying to keep the first N tokens",
    protocol: "chat",
    status: 400,
    body: {
      error:
        "Trying to keep the first 15857 tokens when context the overflows. However, the model is loaded with context length of only 4096 tokens, which is not enough. Try to load the model with a larger context length, or provide a shorter input"
    },
    promptTokens: 15857,
    contextTokens: 4096
  },
  {
    name: "LM Studio (MLX): context size has been exceeded",
    protocol: "chat",
    status: 400,
    body: { error: "Context size has been exceeded." }
  },
  {
    name: "Anthropic: prompt is too long",
    protocol: "messages",
    status: 400,
    body: {
      type: "error",
      error: { type: "invalid_request_error", message: "prompt is too long: 208310 tokens > 200000 maximum" }
    },
    promptTokens: 208310,
    contextTokens: 200000
  },
  {
    name: "Anthropic: input length and max_tokens exceed context limit",
    protocol: "messages",
    status: 400,
    body: {
      type: "error",
      error: {
        type: "invalid_request_error",
        message:
          "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000, decrease input length or `max_tokens` and try again"
      }
    },
    promptTokens: 198000,
    contextTokens: 200000,
    requestedOutputTokens: 8192
  }
]

const expected = (shape: Shape) => ({
  tag: "LlmInvalidRequestError",
  reason: "contextOverflow",
  promptTokens: shape.promptTokens,
  contextTokens: shape.contextTokens,
  requestedOutputTokens: shape.requestedOutputTokens,
  requests: 1
})

describe("a context-length error is one recognisable error, with the sizes the server gave", () => {
  for (const shape of shapes) {
    it.live(shape.name, () =>
      withServer(shape.protocol, (server) =>
        Effect.gen(function*() {
          const body = typeof shape.body === "string" ? shape.body : JSON.stringify(shape.body)
          server.setDefault({ kind: "status", status: shape.status, body })
          const whole = yield* failure(server, Llm.complete(hi))
          expect({ ...whole, error: undefined }).toEqual({ ...expected(shape), error: undefined })
          expect(isContextOverflow(whole.error)).toBe(true)
          expect(whole.error.status).toBe(shape.status)
          const streamed = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
          expect({ ...streamed, error: undefined }).toEqual({ ...expected(shape), error: undefined })
          // the server's words stay in the message
          expect(whole.error.message).toMatch(/context|too long/i)
        })))
  }
})

/** llama-server's current overflow body. */
const llamaOverflow = JSON.stringify({
  error: {
    code: 400,
    message: llamaMessage(9000, 8192),
    type: "exceed_context_size_error",
    n_prompt_tokens: 9000,
    n_ctx: 8192
  }
})
const llamaExpected = {
  tag: "LlmInvalidRequestError",
  reason: "contextOverflow",
  promptTokens: 9000,
  contextTokens: 8192,
  requests: 1
}

describe("llama-server's answers to a streamed request that overflows", () => {
  it.live("a JSON error answer with Connection: close, at 400 or at 200, is that error under every chunking", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        for (const status of [400, 200]) {
          for (const chunks of chunkings(llamaOverflow)) {
            server.setDefault({
              kind: "raw",
              status,
              headers: { "content-type": "application/json; charset=utf-8", connection: "close" },
              chunks,
              delayMs: chunks.length > 100 ? 0 : 1
            })
            const { error: _, ...streamed } = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
            expect(streamed, `status ${status}, ${chunks.length} writes`).toEqual(llamaExpected)
          }
        }
      })))

  it.live("the older `error:` SSE field, then [DONE], at 200, is that error under every chunking", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const field = JSON.stringify(JSON.parse(llamaOverflow).error)
        for (const chunks of chunkings(`error: ${field}\n\ndata: [DONE]\n\n`)) {
          server.setDefault(raw(chunks))
          const { error, ...streamed } = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
          expect(streamed, `${chunks.length} writes`).toEqual(llamaExpected)
          expect(error.message).toContain("exceeds the available context size")
        }
        // the field with the Sep 2025 code 500: still final, not retried
        const old = {
          code: 500,
          message: "the request exceeds the available context size",
          type: "exceed_context_size_error"
        }
        server.setDefault(raw([`error: ${JSON.stringify(old)}\n\ndata: [DONE]\n\n`]))
        const { error: _, ...streamed } = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
        expect(streamed).toEqual({ ...llamaExpected, promptTokens: undefined, contextTokens: undefined })
        // any other error in that field is the error it is: a server error is retried
        server.setDefault(raw([`error: {"code":503,"message":"Loading model","type":"unavailable_error"}\n\n`]))
        const loading = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
        expect(loading.tag).toBe("LlmProviderError")
        expect(loading.requests).toBe(3)
      })))

  it.live("an in-band overflow after text carries the text and the sizes", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const chunk = (delta: object) =>
          `data: ${JSON.stringify({ id: "c", model: "m", choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`
        const body = chunk({ role: "assistant", content: "" }) + chunk({ content: "Hello " }) +
          `data: ${
            JSON.stringify({
              error: {
                message:
                  "Reached context length of 4096 tokens with model (arch: gpt-oss) that does not currently support mid-generation context overflow. Try reloading with a larger context length or shortening the prompt/chat."
              }
            })
          }\n\n`
        for (const chunks of chunkings(body)) {
          server.setDefault(raw(chunks))
          const { error, ...streamed } = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
          expect(streamed).toEqual({ ...llamaExpected, promptTokens: undefined, contextTokens: 4096 })
          expect(error.partialText).toBe("Hello ")
        }
      })))

  it.live("Anthropic's in-band error event with prompt is too long is the overflow", () =>
    withServer("messages", (server) =>
      Effect.gen(function*() {
        const event = JSON.stringify({
          type: "error",
          error: { type: "invalid_request_error", message: "prompt is too long: 208310 tokens > 200000 maximum" }
        })
        for (const chunks of chunkings(`event: error\ndata: ${event}\n\n`)) {
          server.setDefault(raw(chunks))
          const { error: _, ...streamed } = yield* failure(server, LlmStream.collect(Llm.stream(hi)))
          expect(streamed).toEqual({ ...llamaExpected, promptTokens: 208310, contextTokens: 200000 })
        }
      })))
})

describe("what is not a context overflow", () => {
  it.live("other rejections, rate limits on tokens, and server errors keep their class, without the reason", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [number, object, string]> = [
          [400, {
            error: {
              message:
                "max_tokens is too large: 100000. This model supports at most 16384 completion tokens, whereas you provided 100000.",
              type: "invalid_request_error",
              code: "invalid_value"
            }
          }, "LlmInvalidRequestError"],
          [429, {
            error: {
              message: "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 50000.",
              type: "tokens",
              code: "rate_limit_exceeded"
            }
          }, "LlmRateLimitError"],
          [
            500,
            { error: { message: "the server failed to decode the batch", type: "server_error" } },
            "LlmProviderError"
          ],
          [404, { error: { message: "model 'x' not found", type: "not_found_error" } }, "LlmInvalidRequestError"]
        ]
        for (const [status, body, tag] of cases) {
          server.setDefault({ kind: "status", status, body: JSON.stringify(body) })
          const whole = yield* failure(server, Llm.complete(hi))
          expect(whole.tag).toBe(tag)
          expect(whole.reason).toBeUndefined()
          expect(isContextOverflow(whole.error)).toBe(false)
        }
      })))

  it("isContextOverflow is false for anything but an overflow error", () => {
    const common = { provider: "p", model: "m", message: "x" }
    expect(isContextOverflow(new LlmInvalidRequestError({ ...common, reason: "contextOverflow" }))).toBe(true)
    expect(isContextOverflow(new LlmInvalidRequestError(common))).toBe(false)
    expect(isContextOverflow(new LlmProviderError(common))).toBe(false)
    expect(isContextOverflow(new LlmRateLimitError(common))).toBe(false)
    expect(isContextOverflow(undefined)).toBe(false)
  })

  it("the reason and the sizes survive JSON encoding of the error", () => {
    const error = new LlmInvalidRequestError({
      provider: "local",
      model: "m",
      message: "too long",
      status: 400,
      reason: "contextOverflow",
      promptTokens: 9000,
      contextTokens: 8192,
      requestedOutputTokens: 512
    })
    const encoded = Schema.encodeSync(LlmError)(error)
    expect(encoded).toMatchObject({
      reason: "contextOverflow",
      promptTokens: 9000,
      contextTokens: 8192,
      requestedOutputTokens: 512
    })
    const decoded = Schema.decodeUnknownSync(LlmError)(JSON.parse(JSON.stringify(encoded)))
    expect(isContextOverflow(decoded)).toBe(true)
  })
})
