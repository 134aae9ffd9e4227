/**
 * A server that ignores `stream: true` and answers a streamed request with a
 * complete JSON body, over real loopback HTTP, in both wire formats and under
 * several chunkings: a reply is decoded as the reply (its events emitted), an
 * error body as the error it is, exactly as `complete()` reads the same body.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Llm from "../src/Llm.js"
import * as LlmStream from "../src/Stream.js"
import { chunkings, failureOf, hi, type Protocol, raw, withServer } from "./support/replies.js"

/** What a result says, without its latency. */
const comparable = (result: Llm.CompletionResult) => ({
  content: result.content,
  reasoning: result.reasoning,
  finishReason: result.finishReason,
  toolCalls: result.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments })),
  usage: { input: result.usage.inputTokens, output: result.usage.outputTokens },
  model: result.model,
  responseId: result.metadata.responseId,
  attempts: result.metadata.attempts
})

/** A JSON reply body in each wire format, and what it means. */
const jsonReplies: Record<Protocol, { readonly body: object; readonly expected: object }> = {
  chat: {
    body: {
      id: "chatcmpl-7",
      object: "chat.completion",
      model: "m-2",
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: "Checking.",
          reasoning_content: "Weather needs a tool.",
          tool_calls: [{
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }
          }]
        },
        finish_reason: "tool_calls"
      }],
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }
    },
    expected: {
      content: "Checking.",
      reasoning: "Weather needs a tool.",
      finishReason: "tool_calls",
      toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }],
      usage: { input: 11, output: 7 },
      model: "m-2",
      responseId: "chatcmpl-7",
      attempts: 1
    }
  },
  messages: {
    body: {
      id: "msg_7",
      type: "message",
      role: "assistant",
      model: "claude-y",
      content: [
        { type: "thinking", thinking: "Weather needs a tool.", signature: "sig" },
        { type: "text", text: "Checking." },
        { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }
      ],
      stop_reason: "tool_use",
      usage: { input_tokens: 11, output_tokens: 7 }
    },
    expected: {
      content: "Checking.",
      reasoning: "Weather needs a tool.",
      finishReason: "tool_calls",
      toolCalls: [{ id: "toolu_1", name: "get_weather", arguments: { city: "Oslo" } }],
      usage: { input: 11, output: 7 },
      model: "claude-y",
      responseId: "msg_7",
      attempts: 1
    }
  }
}

/** JSON error bodies sent with status 200, in each wire format: what they are, and whether they are retried. */
const jsonErrors: Record<
  Protocol,
  ReadonlyArray<{ readonly body: object; readonly error: string; readonly requests: number }>
> = {
  chat: [
    {
      body: {
        error: {
          message:
            "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens.",
          type: "invalid_request_error",
          param: "messages",
          code: "context_length_exceeded"
        }
      },
      error: "LlmInvalidRequestError",
      requests: 1
    },
    {
      body: { error: { message: "The server is overloaded", type: "server_error", param: null, code: null } },
      error: "LlmProviderError",
      requests: 3
    }
  ],
  messages: [
    {
      body: {
        type: "error",
        error: { type: "invalid_request_error", message: "prompt is too long: 250000 tokens > 200000 maximum" }
      },
      error: "LlmInvalidRequestError",
      requests: 1
    },
    {
      body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
      error: "LlmProviderError",
      requests: 3
    }
  ]
}

for (const protocol of ["chat", "messages"] as const) {
  describe(`${protocol}: a complete JSON body to a streamed request`, () => {
    it.live("a JSON reply is decoded as the reply: its events are emitted, the same as complete() gives", () =>
      withServer(protocol, (server) =>
        Effect.gen(function*() {
          const { body, expected } = jsonReplies[protocol]
          const text = JSON.stringify(body, null, 1)
          server.setDefault(raw([text], "application/json"))
          expect(comparable(yield* Llm.complete(hi))).toEqual(expected)
          // labelled JSON, or mislabelled as an event stream: the bytes say what it is
          for (const contentType of ["application/json", "text/event-stream"]) {
            for (const chunks of chunkings(text)) {
              server.setDefault(raw(chunks, contentType))
              expect(comparable(yield* LlmStream.collect(Llm.stream(hi)))).toEqual(expected)
            }
          }
          // and the text-only channel sees the same text
          server.setDefault(raw([text], "application/json"))
          const texts = yield* Stream.runCollect(Llm.streamText(hi))
          expect(Chunk.join(texts, "")).toBe("Checking.")
        })))

    it.live("a JSON error body is the error it is, the same as complete() gives, retried alike", () =>
      withServer(protocol, (server) =>
        Effect.gen(function*() {
          for (const { body, error, requests } of jsonErrors[protocol]) {
            const text = JSON.stringify(body)
            server.setDefault(raw([text], "application/json"))
            const whole = yield* failureOf(server, Llm.complete(hi))
            expect(whole.error).toBe(error)
            expect(whole.requests).toBe(requests)
            for (const chunks of chunkings(text)) {
              server.setDefault(raw(chunks, "application/json"))
              expect(yield* failureOf(server, LlmStream.collect(Llm.stream(hi)))).toEqual(whole)
            }
          }
        })))
  })
}
