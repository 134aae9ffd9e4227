/**
 * Reasoning on the wire. Decoding: Anthropic's signed thinking blocks and
 * redacted_thinking blocks, and the Chat Completions reasoning fields, become
 * `ReasoningPart`s, the same whole (`complete`) and streamed
 * (`LlmStream.collect`), under several chunkings, on recorded fixtures.
 * Encoding: each codec sends the parts back as its backend requires, and a
 * history with thinking and tool calls moves across all four backends with
 * each request body checked exactly: nothing becomes visible text, nothing a
 * backend would refuse is sent.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Messages from "../src/codecs/AnthropicMessages.js"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { CompletionResult, StreamEvent } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import { backends } from "./support/backends.js"
import { context, decodeSse } from "./support/decode.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixtureScript, fixturesDir, readFixture } from "./support/fixtures.js"
import { chunkings, raw } from "./support/replies.js"

const plain = (parts: ReadonlyArray<Message.ReasoningPart> | undefined) => parts?.map((part) => ({ ...part }))

const backend = (name: string) => backends.find((b) => b.name === name)!

/** Runs `f` with the named backend pointed at a fresh fake server. */
const on = <A, E>(name: string, f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(backend(name).layer(server.url, { retry: { maxRetries: 0 } })))
  }))

const hi = [Message.user("Hi")]

/** The body of request `i`. */
const bodyOf = (server: FakeProvider.FakeProvider, i = 0) => server.requests[i]!.body as Record<string, unknown>

const sse = (events: ReadonlyArray<Record<string, unknown>>) =>
  events.map((event) => `event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`).join("")

describe("decoding Anthropic thinking", () => {
  const json = JSON.parse(readFixture("anthropic/anthropic-clear-thinking.1.json")) as {
    content: ReadonlyArray<{ type: string; thinking?: string; signature?: string }>
  }
  const streamedSignature = readFixture("anthropic/anthropic-clear-thinking.1.chunks.txt").split("\n")
    .filter((line) => line.includes("signature_delta"))
    .map((line) => (JSON.parse(line) as { delta: { signature: string } }).delta.signature)

  it.live("complete: the recorded thinking block is a part with its text, signature and provider", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        server.enqueue(fixtureScript("anthropic/anthropic-clear-thinking.1.json"))
        const result = yield* Llm.complete(hi)
        expect(result.content).toBe("925 ÷ 5 = 185")
        expect(result.reasoning).toBe("925 divided by 5 = 185")
        expect(plain(result.reasoningParts)).toEqual([
          { text: "925 divided by 5 = 185", signature: json.content[0]!.signature, provider: "anthropic" }
        ])
      })))

  it.live("stream: the recorded thinking deltas and signature_delta make one part, under every chunking", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        expect(streamedSignature.length).toBe(1)
        for (const split of ["events", "whole", [7], [1], [13, 2, 101]] as const) {
          server.enqueue(fixtureScript("anthropic/anthropic-clear-thinking.1.chunks.txt", { split }))
          const events = yield* LlmStream.collect(Llm.stream(hi))
          expect(events.reasoning, JSON.stringify(split)).toBe(
            "The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185"
          )
          expect(plain(events.reasoningParts), JSON.stringify(split)).toEqual([{
            text: "The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185",
            signature: streamedSignature[0],
            provider: "anthropic"
          }])
        }
      })))

  it("stream: the part is one event after the block's deltas and before the next block's text", () => {
    const body = readFixture("anthropic/anthropic-clear-thinking.1.chunks.txt").split("\n").filter((line) =>
      line.trim() !== ""
    ).map((line) => `event: ${(JSON.parse(line) as { type: string }).type}\ndata: ${line}\n\n`).join("")
    for (const sizes of [[], [1], [5], [64, 3]]) {
      const decoded = decodeSse(Messages.make(), body, sizes)
      if ("_tag" in decoded) throw new Error(decoded.message)
      const tags = decoded.events.map((event) => event._tag)
      const part = tags.indexOf("ReasoningPart")
      expect(tags.filter((tag) => tag === "ReasoningPart").length).toBe(1)
      expect(tags.lastIndexOf("ReasoningDelta")).toBeLessThan(part)
      expect(tags.indexOf("TextDelta")).toBeGreaterThan(part)
      const event = decoded.events[part] as Extract<StreamEvent, { _tag: "ReasoningPart" }>
      expect({ ...event.part }).toEqual({
        text: "The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185",
        signature: streamedSignature[0],
        provider: context.provider
      })
    }
  })

  it.live("redacted_thinking (the peer's recorded stream) is a part with its data and no text", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        const body = readFileSync(
          join(fixturesDir, "peers/vercel-ai/vercel-ai/inline/anthropic--inline-redacted-reasoning.sse"),
          "utf8"
        )
        for (const chunks of chunkings(body)) {
          server.enqueue(raw(chunks))
          const result = yield* LlmStream.collect(Llm.stream(hi))
          expect(result.content).toBe("Hello, World!")
          expect(result.reasoning).toBeUndefined()
          expect(plain(result.reasoningParts)).toEqual([
            { text: "", redacted: "redacted-thinking-data", provider: "anthropic" }
          ])
        }
      })))

  it.live("a signature_delta on a text block (the peer's recorded stream) is not reasoning", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        server.enqueue(raw([readFileSync(
          join(fixturesDir, "peers/vercel-ai/vercel-ai/inline/anthropic--inline-signature-on-text-delta.sse"),
          "utf8"
        )]))
        const result = yield* LlmStream.collect(Llm.stream(hi))
        expect(result.content).toBe("Hello, World!")
        expect(result.reasoningParts).toBeUndefined()
      })))

  // two thinking blocks (interleaved), a redacted block and a tool call: the same parts whole and streamed
  const message = {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-x",
    content: [
      { type: "thinking", thinking: "First, the city.", signature: "sig-A" },
      { type: "redacted_thinking", data: "ZW5jcnlwdGVk" },
      { type: "text", text: "Checking." },
      { type: "thinking", thinking: "Then the call.", signature: "sig-B" },
      { type: "thinking", thinking: "Unsigned." },
      { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }
    ],
    stop_reason: "tool_use",
    usage: { input_tokens: 5, output_tokens: 9 }
  }
  const streamed = sse([
    { type: "message_start", message: { ...message, content: [], stop_reason: null } },
    { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
    { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "First, " } },
    { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "the city." } },
    { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "sig-A" } },
    { type: "content_block_stop", index: 0 },
    { type: "content_block_start", index: 1, content_block: { type: "redacted_thinking", data: "ZW5jcnlwdGVk" } },
    { type: "content_block_stop", index: 1 },
    { type: "content_block_start", index: 2, content_block: { type: "text", text: "" } },
    { type: "content_block_delta", index: 2, delta: { type: "text_delta", text: "Checking." } },
    { type: "content_block_stop", index: 2 },
    { type: "content_block_start", index: 3, content_block: { type: "thinking", thinking: "Then the call." } },
    { type: "content_block_delta", index: 3, delta: { type: "signature_delta", signature: "sig-B" } },
    { type: "content_block_stop", index: 3 },
    { type: "content_block_start", index: 4, content_block: { type: "thinking", thinking: "" } },
    { type: "content_block_delta", index: 4, delta: { type: "thinking_delta", thinking: "Unsigned." } },
    { type: "content_block_stop", index: 4 },
    {
      type: "content_block_start",
      index: 5,
      content_block: { type: "tool_use", id: "toolu_1", name: "get_weather", input: {} }
    },
    { type: "content_block_delta", index: 5, delta: { type: "input_json_delta", partial_json: "{\"city\":\"Oslo\"}" } },
    { type: "content_block_stop", index: 5 },
    { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } },
    { type: "message_stop" }
  ])
  const parts = [
    { text: "First, the city.", signature: "sig-A", provider: "anthropic" },
    { text: "", redacted: "ZW5jcnlwdGVk", provider: "anthropic" },
    { text: "Then the call.", signature: "sig-B", provider: "anthropic" },
    { text: "Unsigned.", provider: "anthropic" }
  ]

  it.live("several blocks: complete and collect give the same parts, in order, under every chunking", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        server.enqueue(raw([JSON.stringify(message)], "application/json"))
        const whole = yield* Llm.complete(hi)
        expect(plain(whole.reasoningParts)).toEqual(parts)
        expect(whole.reasoning).toBe("First, the city.Then the call.Unsigned.")
        for (const chunks of chunkings(streamed)) {
          server.enqueue(raw(chunks))
          const result = yield* LlmStream.collect(Llm.stream(hi))
          expect(plain(result.reasoningParts)).toEqual(parts)
          expect(result.reasoning).toBe(whole.reasoning)
          expect(result.toolCalls.map((call) => call.id)).toEqual(["toolu_1"])
        }
        // a server that answers the stream with the whole JSON body: the same parts again
        server.enqueue(raw([JSON.stringify(message)], "application/json"))
        const answeredWhole = yield* LlmStream.collect(Llm.stream(hi))
        expect(plain(answeredWhole.reasoningParts)).toEqual(parts)
      })))

  it.live("a redacted block alone is content: the stream is committed and not retried after it", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const body = sse([
        { type: "message_start", message: { ...message, content: [], stop_reason: null } },
        { type: "content_block_start", index: 0, content_block: { type: "redacted_thinking", data: "ZW5j" } }
      ]) +
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
      server.setDefault(raw([body]))
      const error = yield* Effect.flip(
        LlmStream.collect(Llm.stream(hi)).pipe(
          Effect.provide(backend("anthropic").layer(server.url, { retry: { maxRetries: 2 } }))
        )
      )
      expect(error._tag).toBe("LlmProviderError")
      expect(server.requests.length).toBe(1)
    })))
})

describe("decoding Chat Completions reasoning", () => {
  for (const name of ["local", "openai", "openrouter"]) {
    for (const reasoningField of ["reasoning_content", "reasoning"] as const) {
      it.live(`${name}: ${reasoningField} is one part naming the backend, whole and streamed alike`, () =>
        on(name, (server) =>
          Effect.gen(function*() {
            const reply = { kind: "reply" as const, reasoning: "Let me think about it.", text: "Yes.", reasoningField }
            server.enqueue(reply)
            const whole = yield* Llm.complete(hi)
            expect(plain(whole.reasoningParts)).toEqual([{ text: "Let me think about it.", provider: name }])
            for (const chunkSize of [1, 5, 100]) {
              server.enqueue({ ...reply, chunkSize })
              const streamed: CompletionResult = yield* LlmStream.collect(Llm.stream(hi))
              expect(plain(streamed.reasoningParts), `chunkSize ${chunkSize}`).toEqual(plain(whole.reasoningParts))
              expect(streamed.reasoning).toBe(whole.reasoning)
            }
          })))
    }
  }

  it.live("a reply without reasoning has no parts", () =>
    on("local", (server) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", text: "Yes." }, { kind: "reply", text: "Yes." })
        expect((yield* Llm.complete(hi)).reasoningParts).toBeUndefined()
        expect((yield* LlmStream.collect(Llm.stream(hi))).reasoningParts).toBeUndefined()
      })))
})

const call = (id: string, city: string) => ({ id, name: "get_weather", arguments: { city } })

describe("encoding reasoning back: Anthropic", () => {
  const signed = { text: "Signed thought.", signature: "sig-1", provider: "anthropic" }
  const redacted = { text: "", redacted: "b3BhcXVl", provider: "anthropic" }
  const local = { text: "A local thought.", provider: "local" }
  const unsigned = { text: "A cut-off thought.", provider: "anthropic" }

  it.live("thinking and redacted_thinking blocks come first; parts without a signature are dropped", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        yield* Llm.complete([
          Message.user("Weather?"),
          Message.assistant("Checking.", [call("toolu_1", "Oslo")], { reasoning: [signed, local, redacted, unsigned] }),
          Message.tool({ toolCallId: "toolu_1", name: "get_weather", content: "rain" })
        ])
        expect((bodyOf(server).messages as ReadonlyArray<unknown>)[1]).toEqual({
          role: "assistant",
          content: [
            { type: "thinking", thinking: "Signed thought.", signature: "sig-1" },
            { type: "redacted_thinking", data: "b3BhcXVl" },
            { type: "text", text: "Checking." },
            // the last block before the newest user turn carries the default cache breakpoint
            {
              type: "tool_use",
              id: "toolu_1",
              name: "get_weather",
              input: { city: "Oslo" },
              cache_control: { type: "ephemeral" }
            }
          ]
        })
      })))

  it.live("a message that would hold only reasoning is not sent", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        yield* Llm.complete([
          Message.user("One."),
          Message.assistant("", [], { reasoning: [signed] }),
          Message.user("Two.")
        ])
        expect(bodyOf(server).messages).toEqual([
          { role: "user", content: [{ type: "text", text: "One." }, { type: "text", text: "Two." }] }
        ])
      })))

  it.live("merged assistant messages keep every thinking block before their text and calls", () =>
    on("anthropic", (server) =>
      Effect.gen(function*() {
        yield* Llm.complete([
          Message.user("Weather?"),
          Message.assistant("Let me see.", [], { reasoning: [signed] }),
          Message.assistant("", [call("toolu_1", "Oslo")], { reasoning: [redacted] }),
          Message.tool({ toolCallId: "toolu_1", name: "get_weather", content: "rain" })
        ])
        expect(
          (bodyOf(server).messages as ReadonlyArray<{ content: ReadonlyArray<{ type: string }> }>)[1]!.content.map((
            block
          ) => block.type)
        ).toEqual(["thinking", "redacted_thinking", "text", "tool_use"])
      })))
})

describe("encoding reasoning back: Chat Completions", () => {
  const history = (reasoning: ReadonlyArray<Message.ReasoningPartInput>, content = "") => [
    Message.user("Weather?"),
    Message.assistant(content, [call("c1", "Oslo")], { reasoning }),
    Message.tool({ toolCallId: "c1", name: "get_weather", content: "rain" }),
    Message.assistant("Rainy.", [], { reasoning: [{ text: "Answer now.", provider: "local" }] }),
    Message.user("Thanks.")
  ]
  const encode = (codec: ReturnType<typeof ChatCompletions.make>, messages: ReadonlyArray<Message.Message>) => {
    const encoded = codec.encode({ model: "m", messages, options: {}, stream: false })
    if ("invalid" in encoded) throw new Error(encoded.invalid)
    return (encoded.body as { messages: ReadonlyArray<Record<string, unknown>> }).messages
  }

  it.live("local: the text of the parts goes in reasoning_content on tool-call turns only, redacted parts left out", () =>
    on("local", (server) =>
      Effect.gen(function*() {
        yield* Llm.complete(history([
          { text: "Local thought.", provider: "local" },
          { text: "", redacted: "b3BhcXVl", provider: "anthropic" },
          { text: "Signed thought.", signature: "sig", provider: "anthropic" }
        ]))
        const messages = bodyOf(server).messages as ReadonlyArray<Record<string, unknown>>
        expect(messages[1]).toEqual({
          role: "assistant",
          content: "",
          reasoning_content: "Local thought.\n\nSigned thought.",
          tool_calls: [{
            id: "c1",
            type: "function",
            function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }
          }]
        })
        // the final answer's reasoning is not sent back (chat templates drop it anyway)
        expect(messages[3]).toEqual({ role: "assistant", content: "Rainy." })
      })))

  it.live("local: a tool-call turn with text gets no reasoning (gpt-oss's template refuses both on one call)", () =>
    on("local", (server) =>
      Effect.gen(function*() {
        yield* Llm.complete(history([{ text: "Local thought.", provider: "local" }], "Let me check."))
        expect((bodyOf(server).messages as ReadonlyArray<Record<string, unknown>>)[1]).toEqual({
          role: "assistant",
          content: "Let me check.",
          tool_calls: [{
            id: "c1",
            type: "function",
            function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }
          }]
        })
      })))

  for (const name of ["openai", "openrouter"]) {
    it.live(`${name}: no reasoning is sent, in no field and not as text`, () =>
      on(name, (server) =>
        Effect.gen(function*() {
          yield* Llm.complete(history([{ text: "Local thought.", provider: "local" }]))
          expect(server.requests[0]!.rawBody).not.toContain("thought")
          expect(server.requests[0]!.rawBody).not.toContain("Answer now")
          expect((bodyOf(server).messages as ReadonlyArray<Record<string, unknown>>)[1]).toEqual({
            role: "assistant",
            content: null,
            tool_calls: [{
              id: "c1",
              type: "function",
              function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }
            }]
          })
        })))
  }

  it("a codec with reasoningField \"reasoning\" sends it there; without one, nowhere", () => {
    const messages = history([{ text: "Thought.", provider: "local" }])
    expect(encode(ChatCompletions.make({ reasoningField: "reasoning", emptyAssistantContent: "" }), messages)[1])
      .toMatchObject({ reasoning: "Thought.", content: "" })
    expect(JSON.stringify(encode(ChatCompletions.make(), messages))).not.toContain("Thought.")
  })

  it("parts with no text send nothing", () => {
    const messages = history([{ text: "", redacted: "b3BhcXVl", provider: "anthropic" }])
    expect(Object.keys(encode(ChatCompletions.make({ reasoningField: "reasoning_content" }), messages)[1]!)).toEqual([
      "role",
      "content",
      "tool_calls"
    ])
  })
})

describe("one conversation with thinking and tool calls across all four backends", () => {
  const anthropicStep = {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-20250514",
    content: [
      { type: "thinking", thinking: "I should check Oslo first.", signature: "sig-oslo" },
      { type: "redacted_thinking", data: "c2VjcmV0" },
      { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }
    ],
    stop_reason: "tool_use",
    usage: { input_tokens: 10, output_tokens: 20 }
  }

  /** The history, built from real replies: a step on Anthropic, then a step on the local server. */
  const history = Effect.gen(function*() {
    const first = yield* on("anthropic", (server) =>
      Effect.gen(function*() {
        server.enqueue(raw([JSON.stringify(anthropicStep)], "application/json"))
        return yield* Llm.complete([Message.user("Weather in Oslo and Bergen?")])
      }))
    const afterFirst = [
      Message.user("Weather in Oslo and Bergen?"),
      first.toMessage(),
      Message.tool({ toolCallId: "toolu_1", name: "get_weather", content: "rain" })
    ]
    const second = yield* on("local", (server) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reply", reasoning: "Now Bergen.", toolCalls: [call("call_2", "Bergen")] })
        return yield* Llm.complete(afterFirst)
      }))
    return [
      ...afterFirst,
      second.toMessage(),
      Message.tool({ toolCallId: "call_2", name: "get_weather", content: "sun" })
    ]
  })

  const chatCall = (id: string, city: string) => ({
    id,
    type: "function",
    function: { name: "get_weather", arguments: JSON.stringify({ city }) }
  })
  const chatMessages = (reasoning: boolean, emptyContent: null | "") => [
    { role: "user", content: "Weather in Oslo and Bergen?" },
    {
      role: "assistant",
      content: emptyContent,
      ...(reasoning ? { reasoning_content: "I should check Oslo first." } : {}),
      tool_calls: [chatCall("toolu_1", "Oslo")]
    },
    { role: "tool", tool_call_id: "toolu_1", content: "rain" },
    {
      role: "assistant",
      content: emptyContent,
      ...(reasoning ? { reasoning_content: "Now Bergen." } : {}),
      tool_calls: [chatCall("call_2", "Bergen")]
    },
    { role: "tool", tool_call_id: "call_2", content: "sun" }
  ]
  const anthropicMessages = [
    { role: "user", content: [{ type: "text", text: "Weather in Oslo and Bergen?" }] },
    {
      role: "assistant",
      content: [
        { type: "thinking", thinking: "I should check Oslo first.", signature: "sig-oslo" },
        { type: "redacted_thinking", data: "c2VjcmV0" },
        { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Oslo" } }
      ]
    },
    { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "rain" }] },
    // the local step's reasoning has no signature: Anthropic cannot take it
    {
      role: "assistant",
      content: [{
        type: "tool_use",
        id: "call_2",
        name: "get_weather",
        input: { city: "Bergen" },
        // the default cache breakpoint: the last block before the newest user turn
        cache_control: { type: "ephemeral" }
      }]
    },
    { role: "user", content: [{ type: "tool_result", tool_use_id: "call_2", content: "sun" }] }
  ]

  /** What each backend is sent, without and with `reasoning: { effort: "low" }`. */
  const expected = (effort: boolean): Readonly<Record<string, unknown>> => ({
    local: {
      model: "gpt-oss:20b",
      messages: chatMessages(true, ""),
      ...(effort ? { reasoning_effort: "low" } : {})
    },
    openai: { model: "gpt-4o", messages: chatMessages(false, null), ...(effort ? { reasoning_effort: "low" } : {}) },
    openrouter: {
      model: "openai/gpt-4o",
      messages: chatMessages(false, null),
      ...(effort ? { reasoning: { effort: "low" } } : {})
    },
    // with thinking asked for, the last tool step (the local one) has no thinking block, which Anthropic
    // requires of it: thinking is left off for this request rather than have it refused
    anthropic: { model: "claude-sonnet-4-20250514", max_tokens: 1024, messages: anthropicMessages }
  })

  for (const effort of [false, true]) {
    it.live(`each backend gets the reasoning it takes, and only that${effort ? " (reasoning effort low)" : ""}`, () =>
      Effect.gen(function*() {
        const messages = yield* history
        for (const name of ["local", "openai", "openrouter", "anthropic"]) {
          const body = yield* on(name, (server) =>
            Effect.gen(function*() {
              server.enqueue({ kind: "reply", text: "Oslo rain, Bergen sun." })
              const result = yield* Llm.complete(messages, effort ? { reasoning: { effort: "low" } } : {})
              expect(result.content).toBe("Oslo rain, Bergen sun.")
              return bodyOf(server)
            }))
          expect(body, name).toEqual(expected(effort)[name])
        }
      }))
  }
})

describe("OpenRouter reasoning_details, both ways", () => {
  const signature = "ErkBCkoICxACGAIiQD6sig+sig/sig=="
  const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id: "gen-1",
    provider: "Google",
    model: "anthropic/claude-3.7-sonnet:thinking",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { role: "assistant", ...delta }, finish_reason: null }],
    ...extra
  })
  const entry = (fields: Record<string, unknown>) => ({
    type: "reasoning.text",
    format: "anthropic-claude-v1",
    index: 0,
    ...fields
  })
  // the shape OpenRouter streams (recorded by tmc/langchaingo): an opening empty entry, the text in pieces (with
  // `reasoning` alongside), an empty piece, the signature alone, then the text and the tool call
  const stream = (withReasoning: boolean) => {
    const pieces = ["Let's", " check", " the weather."]
    const events = [
      chunk({ content: "", reasoning: null, reasoning_details: [] }),
      chunk({ content: "", reasoning: null, reasoning_details: [entry({ text: "", signature: "" })] }),
      ...pieces.map((text) =>
        chunk({ content: "", ...(withReasoning ? { reasoning: text } : {}), reasoning_details: [entry({ text })] })
      ),
      chunk({ content: "", reasoning: null, reasoning_details: [entry({ text: "" })] }),
      chunk({ content: "", reasoning: null, reasoning_details: [entry({ signature })] }),
      chunk({ content: "I'll check.", reasoning: null, reasoning_details: [] }),
      chunk({
        content: null,
        tool_calls: [{ id: "toolu_1", index: 0, type: "function", function: { name: "get_weather", arguments: "" } }]
      }),
      chunk({ content: null, tool_calls: [{ index: 0, function: { arguments: "{\"city\":\"Oslo\"}" } }] }),
      {
        ...chunk({ content: "" }),
        choices: [{ index: 0, delta: { content: "" }, finish_reason: "tool_calls" }]
      },
      chunk({ content: "" }, { usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })
    ]
    return events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("") +
      ": OPENROUTER PROCESSING\n\ndata: [DONE]\n\n"
  }
  const whole = entry({ text: "Let's check the weather.", signature })

  for (const withReasoning of [true, false]) {
    it.live(
      `streamed ${
        withReasoning ? "with" : "without"
      } a reasoning string: one part carrying the folded entries, under every chunking`,
      () =>
        on("openrouter", (server) =>
          Effect.gen(function*() {
            for (const writes of chunkings(stream(withReasoning))) {
              server.enqueue(raw(writes))
              const result = yield* LlmStream.collect(Llm.stream(hi))
              expect(result.reasoning).toBe("Let's check the weather.")
              expect(plain(result.reasoningParts)).toEqual([
                { text: "Let's check the weather.", details: [whole], provider: "openrouter" }
              ])
              expect(result.content).toBe("I'll check.")
              expect(result.toolCalls.map((c) => c.name)).toEqual(["get_weather"])
            }
          }))
    )
  }

  it.live("sent back with the assistant message, as they came, on the next request", () =>
    on("openrouter", (server) =>
      Effect.gen(function*() {
        server.enqueue(raw([stream(true)]))
        const result = yield* LlmStream.collect(Llm.stream(hi))
        yield* Llm.complete([
          ...hi,
          result.toMessage(),
          Message.tool({ toolCallId: "toolu_1", name: "get_weather", content: "rain" })
        ])
        const sent = (bodyOf(server, 1).messages as ReadonlyArray<Record<string, unknown>>)[1]
        expect(sent).toEqual({
          role: "assistant",
          content: "I'll check.",
          reasoning_details: [whole],
          tool_calls: [{
            id: "toolu_1",
            type: "function",
            function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }
          }]
        })
      })))

  it.live("a whole reply's entries (an encrypted one, no text) make its part and go back on a text turn too", () =>
    on("openrouter", (server) =>
      Effect.gen(function*() {
        const encrypted = {
          type: "reasoning.encrypted",
          data: "b3BhcXVl",
          format: "openai-responses-v1",
          id: "rs_1",
          index: 0
        }
        server.enqueue(raw([JSON.stringify({
          id: "gen-2",
          model: "openai/o3",
          choices: [{
            index: 0,
            message: { role: "assistant", content: "Hello.", reasoning: null, reasoning_details: [encrypted] },
            finish_reason: "stop"
          }],
          usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }
        })], "application/json"))
        const result = yield* Llm.complete(hi)
        expect(plain(result.reasoningParts)).toEqual([{ text: "", details: [encrypted], provider: "openrouter" }])
        expect(result.reasoning).toBeUndefined()
        yield* Llm.complete([...hi, result.toMessage(), Message.user("Again.")])
        expect((bodyOf(server, 1).messages as ReadonlyArray<unknown>)[1]).toEqual({
          role: "assistant",
          content: "Hello.",
          reasoning_details: [encrypted]
        })
      })))

  for (const name of ["local", "openai"]) {
    it.live(`${name}: the entries are not sent to a backend that does not read them`, () =>
      on(name, (server) =>
        Effect.gen(function*() {
          yield* Llm.complete([
            ...hi,
            Message.assistant("", [call("call_1", "Oslo")], {
              reasoning: [{ text: "Thought.", details: [whole], provider: "openrouter" }]
            }),
            Message.tool({ toolCallId: "call_1", name: "get_weather", content: "rain" })
          ])
          const sent = (bodyOf(server).messages as ReadonlyArray<Record<string, unknown>>)[1]!
          expect(sent.reasoning_details).toBeUndefined()
          expect(JSON.stringify(bodyOf(server))).not.toContain(signature)
        })))
  }
})
