/**
 * Error bodies in every common shape keep their reason: `{error:{message}}`,
 * `{error:"text"}` (LM Studio, Ollama), `{message}`, `{detail}` and FastAPI's
 * `{detail:[{loc,msg}]}` (vLLM), OpenRouter's `error.metadata.raw`, plain
 * text. As status errors and as in-band stream errors, both wire formats,
 * over loopback against the fake provider.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { isTransient } from "../src/errors.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hi")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

/** Bodies and the reason each must keep (every piece must appear in the error message). */
const shapes: ReadonlyArray<readonly [string, string | object, ReadonlyArray<string>]> = [
  ["{error:{message}}", { error: { message: "model gpt-x does not exist", type: "invalid_request_error" } }, [
    "model gpt-x does not exist"
  ]],
  ["{error:\"text\"}", { error: "Model 'qwen3' is not loaded. Load it first." }, ["Model 'qwen3' is not loaded"]],
  ["{message}", { object: "error", message: "The model `x` does not exist.", type: "NotFoundError", code: 404 }, [
    "The model `x` does not exist."
  ]],
  ["{detail}", { detail: "Not Found: no such route" }, ["Not Found: no such route"]],
  ["{detail:[{loc,msg}]}", {
    detail: [
      { type: "missing", loc: ["body", "messages", 0, "content"], msg: "Field required", input: null },
      { type: "int_parsing", loc: ["body", "max_tokens"], msg: "Input should be a valid integer" }
    ]
  }, ["body.messages.0.content: Field required", "body.max_tokens: Input should be a valid integer"]],
  ["OpenRouter metadata.raw", {
    error: {
      code: 404,
      message: "Provider returned error",
      metadata: {
        provider_name: "Mistral",
        raw: JSON.stringify({
          object: "error",
          message: "Invalid model: mistral-x",
          type: "invalid_model",
          code: "1500"
        })
      }
    },
    user_id: "user_1"
  }, ["Provider returned error", "Mistral", "Invalid model: mistral-x"]],
  ["OpenRouter metadata.raw as text", {
    error: {
      code: 404,
      message: "Provider returned error",
      metadata: { provider_name: "Groq", raw: "upstream said no" }
    }
  }, ["Provider returned error", "Groq: upstream said no"]],
  ["OpenRouter moderation", {
    error: {
      code: 404,
      message: "Input was flagged",
      metadata: { reasons: ["violence", "harassment"], flagged_input: "...", provider_name: "OpenAI", model_slug: "x" }
    }
  }, ["Input was flagged", "violence, harassment"]],
  ["plain text", "upstream connect error or disconnect/reset before headers", ["upstream connect error or disconnect"]]
]

describe("status errors keep the reason of every common error body", () => {
  for (const backend of backends) {
    it.live(`${backend.name}: HTTP 404 in every shape`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, noRetry)
        for (const [label, body, reason] of shapes) {
          server.setDefault({
            kind: "status",
            status: 404,
            body: typeof body === "string" ? body : JSON.stringify(body)
          })
          const complete = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(layer)))
          const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
          for (const error of [complete, streamed]) {
            expect(error._tag, label).toBe("LlmInvalidRequestError")
            expect(error.status, label).toBe(404)
            for (const piece of reason) expect(error.message, label).toContain(piece)
            expect(error.message, label).not.toContain("the request was rejected")
          }
        }
      })))
  }

  it.live("a 503 from a server that only says {error: \"text\"} stays transient, with its reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "status", status: 503, body: JSON.stringify({ error: "Model is loading" }) })
      for (const backend of backends) {
        const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(backend.layer(server.url, noRetry))))
        expect(error._tag).toBe("LlmProviderError")
        expect(isTransient(error)).toBe(true)
        expect(error.message).toContain("Model is loading")
      }
    })))
})

/** The same SSE body delivered whole, in small reads, and one byte short of whole then the rest. */
const chunkings = (body: string): ReadonlyArray<ReadonlyArray<string>> => {
  const pieces: Array<string> = []
  for (let i = 0; i < body.length; i += 13) pieces.push(body.slice(i, i + 13))
  return [[body], pieces, [body.slice(0, body.length - 1), body.slice(-1)]]
}

const chatText = `data: ${
  JSON.stringify({ id: "c", model: "m", choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }] })
}\n\n`

describe("in-band stream errors keep their reason", () => {
  const chat = backends.filter((backend) => backend.protocol === "chat")
  const messages = backends.filter((backend) => backend.protocol === "messages")

  /** In-band errors as each wire format carries them, the class each must become, and its reason. */
  const cases: ReadonlyArray<
    readonly [string, ReadonlyArray<typeof backends[number]>, string, string, boolean, ReadonlyArray<string>]
  > = [
    // no type, no code: a server failing mid-stream without saying why; transient
    [
      "chat {error:\"text\"}",
      chat,
      `data: ${JSON.stringify({ error: "the model crashed" })}\n\n`,
      "LlmProviderError",
      true,
      [
        "the model crashed"
      ]
    ],
    // no type, but the text says the request itself is wrong: not transient
    [
      "chat {error:\"text\"} about the context",
      chat,
      `data: ${JSON.stringify({ error: "the request exceeds the available context size, try increasing it" })}\n\n`,
      "LlmInvalidRequestError",
      false,
      ["exceeds the available context size"]
    ],
    [
      "chat {error:{message,code}} about the context",
      chat,
      `data: ${JSON.stringify({ error: { message: "Context length exceeded", code: "CONTEXT_LENGTH_EXCEEDED" } })}\n\n`,
      "LlmInvalidRequestError",
      false,
      ["Context length exceeded"]
    ],
    [
      "OpenRouter error chunk with metadata.raw",
      chat,
      `data: ${
        JSON.stringify({
          id: "gen-1",
          object: "chat.completion.chunk",
          error: {
            code: 502,
            message: "Provider returned error",
            metadata: { provider_name: "Together", raw: "{\"error\":{\"message\":\"GPU fell over\"}}" }
          },
          choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }]
        })
      }\n\n`,
      "LlmProviderError",
      true,
      ["Provider returned error", "Together: GPU fell over"]
    ],
    [
      "messages {type:error, error:\"text\"}",
      messages,
      `event: error\ndata: ${JSON.stringify({ type: "error", error: "upstream went away" })}\n\n`,
      "LlmProviderError",
      true,
      ["upstream went away"]
    ],
    [
      "messages {detail}",
      messages,
      `event: error\ndata: ${JSON.stringify({ detail: "worker restarted" })}\n\n`,
      "LlmProviderError",
      true,
      ["worker restarted"]
    ]
  ]

  for (const [label, targets, tail, tag, transient, reason] of cases) {
    it.live(label, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        for (const backend of targets) {
          const layer = backend.layer(server.url, noRetry)
          const start = backend.protocol === "chat"
            ? chatText
            : `event: message_start\ndata: ${
              JSON.stringify({ type: "message_start", message: { id: "m", model: "m", usage: { input_tokens: 1 } } })
            }\n\n`
          for (const chunks of chunkings(start + tail)) {
            server.setDefault({ kind: "raw", chunks, delayMs: chunks.length > 1 ? 1 : 0 })
            const error = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
            const where = `${backend.name} ${label} in ${chunks.length} reads`
            expect(error._tag, where).toBe(tag)
            expect(isTransient(error), where).toBe(transient)
            for (const piece of reason) expect(error.message, where).toContain(piece)
          }
        }
      })))
  }

  it.live("a 200 whose body is {error: \"text\"} (chat) fails with its reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({
        kind: "raw",
        headers: { "content-type": "application/json" },
        chunks: [JSON.stringify({ error: "out of memory" })]
      })
      for (const backend of chat) {
        const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(backend.layer(server.url, noRetry))))
        expect(error._tag).toBe("LlmProviderError")
        expect(error.message).toContain("out of memory")
      }
    })))
})
