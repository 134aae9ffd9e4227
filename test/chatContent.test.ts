/**
 * The Chat Completions content a reply is made of, over real loopback HTTP,
 * streamed and whole alike, each under several chunkings: a stream that never
 * carries a choice is no reply, and content sent as an array of typed parts
 * is read part by part.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Llm from "../src/Llm.js"
import * as LlmStream from "../src/Stream.js"
import { chunkings, failureOf, hi, raw, withServer } from "./support/replies.js"

const chatChunk = (choices: ReadonlyArray<unknown>, extra: object = {}) =>
  `data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", model: "m", choices, ...extra })}\n\n`

describe("a stream that produced no choice", () => {
  it.live("chat: every chunk with choices: [] and then [DONE] is a LlmResponseError, like complete() of the same reply", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const body = chatChunk([]) +
          chatChunk([], { usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 } }) + "data: [DONE]\n\n"
        for (const chunks of chunkings(body)) {
          server.setDefault(raw(chunks, "text/event-stream"))
          const streamed = yield* failureOf(server, LlmStream.collect(Llm.stream(hi)))
          expect(streamed.error).toBe("LlmResponseError")
          expect(streamed.message).toMatch(/no choice/)
          expect(streamed.requests).toBe(1)
        }
        server.setDefault(
          raw(
            [JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", model: "m", choices: [] })],
            "application/json"
          )
        )
        const whole = yield* failureOf(server, Llm.complete(hi))
        expect(whole.error).toBe("LlmResponseError")
        expect(whole.requests).toBe(1)
      })))

  it.live("chat: a choice that only finishes is a reply with empty content", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const body = chatChunk([]) + chatChunk([{ index: 0, delta: {}, finish_reason: "stop" }]) + "data: [DONE]\n\n"
        for (const chunks of chunkings(body)) {
          server.setDefault(raw(chunks, "text/event-stream"))
          const result = yield* LlmStream.collect(Llm.stream(hi))
          expect([result.content, result.finishReason]).toEqual(["", "stop"])
        }
      })))
})

describe("chat: content as an array of typed parts", () => {
  const parts = [
    chatChunk([{
      index: 0,
      delta: { role: "assistant", content: [{ type: "thinking", thinking: [{ type: "text", text: "Let me " }] }] }
    }]),
    chatChunk([{ index: 0, delta: { content: [{ type: "reasoning", text: "think." }] } }]),
    chatChunk([{
      index: 0,
      delta: {
        content: [{ type: "text", text: "Hello" }, { type: "image_url", image_url: { url: "x" } }, {
          type: "text",
          text: ", "
        }]
      }
    }]),
    chatChunk([{ index: 0, delta: { content: [{ type: "future_part", data: 1 }, { type: "text", text: "world." }] } }]),
    chatChunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
    "data: [DONE]\n\n"
  ].join("")

  it.live("streamed: text parts are text, thinking and reasoning parts are reasoning, unknown parts are skipped", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        for (const chunks of chunkings(parts)) {
          server.setDefault(raw(chunks, "text/event-stream"))
          const result = yield* LlmStream.collect(Llm.stream(hi))
          expect([result.content, result.reasoning, result.finishReason]).toEqual([
            "Hello, world.",
            "Let me think.",
            "stop"
          ])
        }
      })))

  it.live("complete(): the same parts in message.content", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const body = {
          id: "chatcmpl-2",
          object: "chat.completion",
          model: "m",
          choices: [{
            index: 0,
            message: {
              role: "assistant",
              content: [
                { type: "thinking", thinking: [{ type: "text", text: "Let me " }] },
                { type: "reasoning", reasoning: "think." },
                { type: "text", text: "Hello" },
                { type: "image_url", image_url: { url: "x" } },
                { type: "text", text: ", world." },
                { type: "future_part" },
                "not a part"
              ]
            },
            finish_reason: "stop"
          }]
        }
        for (const chunks of chunkings(JSON.stringify(body))) {
          server.setDefault(raw(chunks, "application/json"))
          const result = yield* Llm.complete(hi)
          expect([result.content, result.reasoning, result.finishReason]).toEqual([
            "Hello, world.",
            "Let me think.",
            "stop"
          ])
        }
      })))

  it.live("a recorded Mistral reasoning stream (thinking parts) gives its reasoning and its text", () =>
    withServer("chat", (server) =>
      Effect.gen(function*() {
        const lines = readFileSync(
          fileURLToPath(
            new URL(
              "./fixtures/peers/vercel-ai/vercel-ai/packages/mistral/src/__fixtures__/mistral-reasoning.chunks.txt",
              import.meta.url
            )
          ),
          "utf8"
        ).split("\n").filter((line) => line.trim() !== "")
        const body = lines.map((line) => `data: ${line}\n\n`).join("")
        for (const chunks of chunkings(body)) {
          server.setDefault(raw(chunks, "text/event-stream"))
          const result = yield* LlmStream.collect(Llm.stream(hi))
          expect(result.content).toBe("2 + 2 = 4")
          expect(result.reasoning).toBe("The user is asking for 2+2. This is basic arithmetic. 2+2=4.")
          expect(result.finishReason).toBe("stop")
        }
      })))
})
