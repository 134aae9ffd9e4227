import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Messages from "../src/codecs/AnthropicMessages.js"
import type { EncodeInput } from "../src/codecs/WireCodec.js"
import { isTransient } from "../src/errors.js"
import { fromProviderFailure } from "../src/internal/errorFactory.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import { context, decodeSse, summarize } from "./support/decode.js"
import * as FakeProvider from "./support/FakeProvider.js"

const fixtures = fileURLToPath(new URL("./fixtures/anthropic/", import.meta.url))
const codec = Messages.make()

interface WireUsage {
  readonly input_tokens: number
  readonly output_tokens: number
  readonly cache_creation_input_tokens?: number | null
  readonly cache_read_input_tokens?: number | null
}

interface Derived {
  readonly message_id: string
  readonly model: string
  readonly content: ReadonlyArray<
    { type: "text"; text: string } | { type: "thinking"; thinking: string } | {
      type: "tool_use"
      id: string
      name: string
      input: unknown
    }
  >
  readonly stop_reason: string
  readonly usage?: WireUsage
  readonly usage_merged_message_start_then_message_delta?: WireUsage
}

const derivedOf = (file: string): Derived =>
  (JSON.parse(readFileSync(`${file}.expected.json`, "utf8")) as { derived_from_fixture: Derived }).derived_from_fixture

/** Anthropic's stream with its `event:` lines put back (the fixtures keep only the data). */
const sseBody = (file: string): string =>
  readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "").map((line) =>
    `event: ${(JSON.parse(line) as { type: string }).type}\ndata: ${line}\n\n`
  ).join("")

const reasonOf: Record<string, string> = { end_turn: "stop", tool_use: "tool_calls", max_tokens: "length" }

/** What the reply should decode to, read from the fixture's own description of itself. */
const expectedOf = (derived: Derived) => {
  const usage = derived.usage ?? derived.usage_merged_message_start_then_message_delta!
  const cacheWrite = usage.cache_creation_input_tokens ?? undefined
  const cacheRead = usage.cache_read_input_tokens ?? undefined
  const input = usage.input_tokens + (cacheWrite ?? 0) + (cacheRead ?? 0)
  return {
    text: derived.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join(""),
    reasoning: derived.content.flatMap((block) => (block.type === "thinking" ? [block.thinking] : [])).join(""),
    toolCalls: derived.content.flatMap((block) =>
      block.type === "tool_use" ? [{ id: block.id, name: block.name, arguments: block.input }] : []
    ),
    finishReason: reasonOf[derived.stop_reason],
    model: derived.model,
    responseId: derived.message_id,
    usage: {
      inputTokens: input,
      outputTokens: usage.output_tokens,
      totalTokens: input + usage.output_tokens,
      ...(cacheRead === undefined ? {} : { cachedInputTokens: cacheRead }),
      ...(cacheWrite === undefined ? {} : { cacheWriteInputTokens: cacheWrite })
    }
  }
}

const files = readdirSync(fixtures).filter((name) => !name.endsWith(".expected.json"))
const streamed = files.filter((name) => name.endsWith(".chunks.txt"))
const errors = files.filter((name) => name.endsWith(".error.json"))
const whole = files.filter((name) => name.endsWith(".json") && !name.endsWith(".error.json"))

describe("Messages codec on recorded replies", () => {
  it("covers every fixture in test/fixtures/anthropic", () => {
    expect(streamed.length + whole.length + errors.length).toBe(files.length)
    expect(streamed.length).toBeGreaterThan(0)
    expect(whole.length).toBeGreaterThan(0)
    expect(errors.length).toBeGreaterThan(0)
  })

  it.each(streamed)("%s decodes to its expected reply under every chunking", (name) => {
    const file = join(fixtures, name)
    const expected = expectedOf(derivedOf(file))
    const body = sseBody(file)
    // each chunking read whole, and read event by event as a stream's first read is
    for (const sizes of [[], [1], [7], [64], [3, 1, 200, 17]]) {
      for (const early of [false, true]) {
        const decoded = decodeSse(codec, body, sizes, early)
        if ("_tag" in decoded) throw new Error(decoded.message)
        const result = summarize(decoded)
        expect(result.text).toBe(expected.text)
        expect(result.reasoning).toBe(expected.reasoning)
        expect(result.toolCalls).toEqual(expected.toolCalls)
        expect(result.finishReason).toBe(expected.finishReason)
        expect(result.model).toBe(expected.model)
        expect(result.responseId).toBe(expected.responseId)
        expect({ ...result.usage }).toEqual(expected.usage)
      }
    }
  })

  it.each(streamed)("%s also decodes from data lines alone (no event: names)", (name) => {
    const file = join(fixtures, name)
    const body = readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "").map((line) =>
      `data: ${line}\n\n`
    ).join("")
    const decoded = decodeSse(codec, body, [13])
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded).text).toBe(expectedOf(derivedOf(file)).text)
  })

  it.each(whole)("%s decodes to its expected reply", (name) => {
    const file = join(fixtures, name)
    const expected = expectedOf(derivedOf(file))
    const decoded = codec.decodeResponse(JSON.parse(readFileSync(file, "utf8")), context)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.content).toBe(expected.text)
    expect(decoded.reasoning ?? "").toBe(expected.reasoning)
    expect(decoded.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }))).toEqual(
      expected.toolCalls
    )
    expect(decoded.finishReason).toBe(expected.finishReason)
    expect(decoded.model).toBe(expected.model)
    expect(decoded.responseId).toBe(expected.responseId)
    expect({ ...decoded.usage }).toEqual(expected.usage)
  })

  it.each(errors)("%s is read and classified as an invalid request at HTTP 400", (name) => {
    const file = join(fixtures, name)
    const derived = JSON.parse(readFileSync(`${file}.expected.json`, "utf8")).derived_from_fixture as Record<
      string,
      string
    >
    const read = codec.readError(JSON.parse(readFileSync(file, "utf8")))
    expect(read).toEqual({ type: derived["error.type"], message: derived["error.message"] })
    const error = fromProviderFailure(context, { status: 400, ...read })
    expect(error._tag).toBe("LlmInvalidRequestError")
    expect(error.errorType).toBe("invalid_request_error")
    expect(isTransient(error)).toBe(false)
  })
})

describe("Messages readError", () => {
  it("reads plain text and other JSON shapes", () => {
    expect(codec.readError("upstream connect error")).toEqual({ message: "upstream connect error" })
    expect(codec.readError("  ")).toEqual({})
    expect(codec.readError({ error: { type: "overloaded_error", message: "Overloaded" } })).toEqual({
      type: "overloaded_error",
      message: "Overloaded"
    })
    expect(codec.readError({ type: "error", message: "flat" })).toEqual({ message: "flat" })
    expect(codec.readError(null)).toEqual({})
  })
})

const base: EncodeInput = { model: "claude-x", messages: [Message.user("hi")], options: {}, stream: false }
/** Encodes with prompt caching off unless the input turns it on: the cache breakpoints are tested in promptCache.test.ts. */
const encode = (input: Partial<EncodeInput>, make: Messages.MessagesOptions = {}) =>
  Messages.make(make).encode({ ...base, ...input, options: { promptCache: false, ...input.options } })
const bodyOf = (input: Partial<EncodeInput>, make: Messages.MessagesOptions = {}) => {
  const encoded = encode(input, make)
  if ("invalid" in encoded) throw new Error(encoded.invalid)
  return encoded.body as Record<string, unknown>
}

describe("Messages encoding", () => {
  it("sends the path, a minimal body and the default max_tokens", () => {
    expect(codec.path).toBe("/v1/messages")
    expect(bodyOf({})).toEqual({
      model: "claude-x",
      max_tokens: 1024,
      messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }]
    })
    expect(bodyOf({}, { defaultMaxTokens: 77 })).toMatchObject({ max_tokens: 77 })
    expect(bodyOf({ options: { maxTokens: 5 } }, { defaultMaxTokens: 77 })).toMatchObject({ max_tokens: 5 })
  })

  it("hoists system messages into the top-level system field, joined in order", () => {
    expect(bodyOf({
      messages: [Message.system("one"), Message.user("q"), Message.system("two"), Message.system("")]
    })).toEqual({
      model: "claude-x",
      max_tokens: 1024,
      system: "one\n\ntwo",
      messages: [{ role: "user", content: [{ type: "text", text: "q" }] }]
    })
  })

  it("encodes a tool round-trip: tool_use after text, results first in one user message, then text", () => {
    expect(
      bodyOf({
        messages: [
          Message.user("weather in Oslo and Rome?"),
          Message.assistant("Checking.", [
            { id: "toolu_1", name: "weather", arguments: { city: "Oslo" } },
            { id: "toolu_2", name: "weather", arguments: { city: "Rome" } }
          ]),
          Message.tool({ toolCallId: "toolu_1", name: "weather", content: "sunny" }),
          Message.tool({ toolCallId: "toolu_2", name: "weather", content: "no such city", isError: true }),
          Message.user("and tomorrow?")
        ]
      }).messages
    ).toEqual([
      { role: "user", content: [{ type: "text", text: "weather in Oslo and Rome?" }] },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Checking." },
          { type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Oslo" } },
          { type: "tool_use", id: "toolu_2", name: "weather", input: { city: "Rome" } }
        ]
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_1", content: "sunny" },
          { type: "tool_result", tool_use_id: "toolu_2", content: "no such city", is_error: true },
          { type: "text", text: "and tomorrow?" }
        ]
      }
    ])
  })

  it("sends a tool-only assistant turn without a text block, and an empty result without content", () => {
    expect(
      bodyOf({
        messages: [
          Message.user("q"),
          Message.assistant("", [{ id: "t", name: "f", arguments: {} }]),
          Message.tool({ toolCallId: "t", name: "f", content: "" })
        ]
      }).messages
    ).toEqual([
      { role: "user", content: [{ type: "text", text: "q" }] },
      { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "t" }] }
    ])
  })

  it("merges consecutive same-role messages and never sends empty text blocks", () => {
    expect(
      bodyOf({
        messages: [
          Message.user("a"),
          Message.user(""),
          Message.user("b"),
          Message.assistant("c"),
          Message.assistant(""),
          Message.assistant("d"),
          Message.user("e"),
          Message.assistant(""),
          Message.user("f")
        ]
      }).messages
    ).toEqual([
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      { role: "assistant", content: [{ type: "text", text: "c" }, { type: "text", text: "d" }] },
      { role: "user", content: [{ type: "text", text: "e" }, { type: "text", text: "f" }] }
    ])
  })

  it("refuses a history that starts with an assistant turn, or has no message with content", () => {
    expect(encode({ messages: [Message.system("s"), Message.assistant("hello"), Message.user("q")] })).toEqual({
      invalid: expect.stringMatching(/start with a user message/)
    })
    expect(encode({ messages: [Message.user(""), Message.assistant("hello")] })).toEqual({
      invalid: expect.stringMatching(/start with a user message/)
    })
    expect(encode({ messages: [Message.system("s")] })).toEqual({
      invalid: expect.stringMatching(/no user message/)
    })
  })

  it("runs the shared validation first", () => {
    expect(encode({ messages: [] })).toEqual({ invalid: "the message list is empty" })
    expect(encode({ options: { temperature: 3 } })).toEqual({ invalid: expect.stringMatching(/temperature/) })
    expect(encode({ messages: [Message.user("q"), Message.tool({ toolCallId: "x", name: "f", content: "r" })] }))
      .toEqual({ invalid: expect.stringMatching(/no preceding assistant tool call/) })
  })

  it("encodes options, tools and stream", () => {
    expect(bodyOf({
      stream: true,
      options: {
        maxTokens: 50,
        temperature: 0.2,
        topP: 0.9,
        stop: ["\n\nHuman:"],
        tools: [
          Message.toolDefinition({
            name: "weather",
            description: "Current weather",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
          }),
          Message.toolDefinition({ name: "now" })
        ],
        toolChoice: "auto"
      }
    })).toEqual({
      model: "claude-x",
      max_tokens: 50,
      stream: true,
      temperature: 0.2,
      top_p: 0.9,
      stop_sequences: ["\n\nHuman:"],
      messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
      tools: [
        {
          name: "weather",
          description: "Current weather",
          input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
        },
        { name: "now", input_schema: { type: "object", properties: {} } }
      ],
      tool_choice: { type: "auto" }
    })
    expect(bodyOf({ options: { stop: [] } })).not.toHaveProperty("stop_sequences")
    expect(bodyOf({ stream: false })).not.toHaveProperty("stream")
  })

  it.each(
    [
      ["auto", { type: "auto" }],
      ["required", { type: "any" }],
      ["none", { type: "none" }],
      [{ name: "f" }, { type: "tool", name: "f" }]
    ] as const
  )("maps toolChoice %j to %j", (toolChoice, wire) => {
    expect(bodyOf({ options: { tools: [Message.toolDefinition({ name: "f" })], toolChoice } }).tool_choice).toEqual(
      wire
    )
  })

  it("drops auto/none tool choice without tools and refuses required without tools", () => {
    expect(bodyOf({ options: { toolChoice: "none" } })).not.toHaveProperty("tool_choice")
    expect(bodyOf({ options: { toolChoice: "auto" } })).not.toHaveProperty("tool_choice")
    expect(encode({ options: { toolChoice: "required" } })).toEqual({
      invalid: expect.stringMatching(/at least one tool/)
    })
  })
})

/** A reply body with the given fields over a plain text reply. */
const reply = (fields: Record<string, unknown> = {}) => ({
  id: "msg_1",
  type: "message",
  role: "assistant",
  model: "claude-y",
  content: [{ type: "text", text: "ok" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 3, output_tokens: 1 },
  ...fields
})

describe("Messages non-streaming decoding", () => {
  it.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["pause_turn", "other"],
    ["something_new", "other"]
  ])("maps stop_reason %s to %s", (wire, ours) => {
    expect(Messages.finishReasonFromWire(wire)).toBe(ours)
    // tool_use means tool calls only when the reply has a tool_use block (without one it is a plain stop)
    const calls = wire === "tool_use" ? { content: [{ type: "tool_use", id: "toolu_1", name: "f", input: {} }] } : {}
    const decoded = codec.decodeResponse(reply({ stop_reason: wire, ...calls }), context)
    expect("_tag" in decoded ? decoded._tag : decoded.finishReason).toBe(ours)
  })

  it("joins text blocks, keeps thinking apart, reads tool_use and skips unknown blocks", () => {
    const decoded = codec.decodeResponse(
      reply({
        content: [
          { type: "thinking", thinking: "hmm", signature: "sig" },
          { type: "redacted_thinking", data: "xxx" },
          { type: "text", text: "Hello, " },
          { type: "server_tool_use", id: "srvtoolu_1", name: "web_search", input: { query: "q" } },
          { type: "web_search_tool_result", tool_use_id: "srvtoolu_1", content: [] },
          { type: "text", text: "world" },
          { type: "tool_use", id: "toolu_1", name: "f", input: { a: 1 } },
          { type: "future_block" }
        ],
        stop_reason: "tool_use"
      }),
      context
    )
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.content).toBe("Hello, world")
    expect(decoded.reasoning).toBe("hmm")
    expect(decoded.toolCalls.map((call) => ({ ...call }))).toEqual([{ id: "toolu_1", name: "f", arguments: { a: 1 } }])
    expect(decoded.finishReason).toBe("tool_calls")
  })

  it("reports the prompt total with cache writes and reads, and both cache counters", () => {
    const decoded = codec.decodeResponse(
      reply({
        usage: { input_tokens: 10, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000, output_tokens: 7 }
      }),
      context
    )
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect({ ...decoded.usage }).toEqual({
      inputTokens: 1110,
      outputTokens: 7,
      totalTokens: 1117,
      cachedInputTokens: 1000,
      cacheWriteInputTokens: 100
    })
    const plain = codec.decodeResponse(
      reply({ usage: { input_tokens: 10, cache_read_input_tokens: null, output_tokens: 2 } }),
      context
    )
    if ("_tag" in plain) throw new Error(plain.message)
    expect({ ...plain.usage }).toEqual({ inputTokens: 10, outputTokens: 2, totalTokens: 12 })
  })

  it("turns an error body in a 200 into the matching error class", () => {
    const overloaded = codec.decodeResponse(
      { type: "error", error: { type: "overloaded_error", message: "Overloaded" }, request_id: "req_1" },
      context
    )
    expect("_tag" in overloaded && overloaded._tag).toBe("LlmProviderError")
    const limited = codec.decodeResponse(
      { type: "error", error: { type: "rate_limit_error", message: "slow" } },
      context
    )
    expect("_tag" in limited && limited._tag).toBe("LlmRateLimitError")
  })

  it("fails on a body without a content array, or that is not an object", () => {
    const missing = codec.decodeResponse(reply({ content: undefined }), context)
    expect("_tag" in missing && missing._tag).toBe("LlmResponseError")
    expect("_tag" in missing && missing.message).toMatch(/no content array/)
    const scalar = codec.decodeResponse("nope", context)
    expect("_tag" in scalar && scalar._tag).toBe("LlmResponseError")
  })
})

/** One SSE event with its `event:` name, as Anthropic sends it. */
const ev = (data: { type: string } & Record<string, unknown>) =>
  `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`

const start = (usage: Record<string, unknown> = { input_tokens: 5, output_tokens: 1 }) =>
  ev({
    type: "message_start",
    message: {
      id: "msg_s",
      type: "message",
      role: "assistant",
      model: "claude-z",
      content: [],
      stop_reason: null,
      usage
    }
  })
const textBlock = (index: number, ...parts: Array<string>) =>
  ev({ type: "content_block_start", index, content_block: { type: "text", text: "" } }) +
  parts.map((text) => ev({ type: "content_block_delta", index, delta: { type: "text_delta", text } })).join("") +
  ev({ type: "content_block_stop", index })
const toolBlock = (index: number, id: string, name: string, ...parts: Array<string>) =>
  ev({ type: "content_block_start", index, content_block: { type: "tool_use", id, name, input: {} } }) +
  parts.map((partial_json) =>
    ev({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } })
  )
    .join("") +
  ev({ type: "content_block_stop", index })
const end = (stop_reason = "end_turn", usage: Record<string, unknown> = { output_tokens: 9 }) =>
  ev({ type: "message_delta", delta: { stop_reason, stop_sequence: null }, usage }) + ev({ type: "message_stop" })

describe("Messages stream decoding", () => {
  it.each([
    ["end_turn", "stop"],
    ["stop_sequence", "stop"],
    ["max_tokens", "length"],
    ["model_context_window_exceeded", "length"],
    ["tool_use", "tool_calls"],
    ["refusal", "content_filter"],
    ["pause_turn", "other"],
    ["something_new", "other"]
  ])("maps stop_reason %s to %s", (wire, ours) => {
    const calls = wire === "tool_use" ? toolBlock(1, "toolu_1", "f") : ""
    const decoded = decodeSse(codec, start() + textBlock(0, "x") + calls + end(wire))
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.finish.finishReason).toBe(ours)
  })

  it("emits text, reasoning and tool calls in order; model and id come from message_start", () => {
    const body = start() +
      ev({ type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } }) +
      ev({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "let me see" } }) +
      ev({ type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "abc" } }) +
      ev({ type: "content_block_stop", index: 0 }) +
      textBlock(1, "I'll ", "check.") +
      ev({
        type: "content_block_delta",
        index: 1,
        delta: { type: "citations_delta", citation: { type: "char_location", cited_text: "x" } }
      }) +
      toolBlock(2, "toolu_a", "weather", "{\"city\":", " \"Oslo\"}") +
      toolBlock(3, "toolu_b", "time") +
      end("tool_use")
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.events.map((event) => event._tag)).toEqual([
      "ReasoningDelta",
      // the thinking block's end: its text and signature, to send back
      "ReasoningPart",
      "TextDelta",
      "TextDelta",
      "ToolCallStart",
      "ToolCallDelta",
      "ToolCallDelta",
      "ToolCallStart",
      "ToolCall",
      "ToolCall"
    ])
    expect(summarize(decoded)).toMatchObject({
      text: "I'll check.",
      reasoning: "let me see",
      toolCalls: [
        { id: "toolu_a", name: "weather", arguments: { city: "Oslo" } },
        { id: "toolu_b", name: "time", arguments: {} }
      ],
      finishReason: "tool_calls",
      model: "claude-z",
      responseId: "msg_s"
    })
    expect(decoded.events[1]).toMatchObject({ _tag: "ReasoningPart", part: { text: "let me see", signature: "abc" } })
    expect(decoded.events[4]).toMatchObject({ _tag: "ToolCallStart", index: 2, id: "toolu_a", name: "weather" })
  })

  it("overwrites usage with message_delta's cumulative counters instead of adding", () => {
    const body =
      start({ input_tokens: 5, cache_creation_input_tokens: 2, cache_read_input_tokens: 3, output_tokens: 1 }) +
      textBlock(0, "x") +
      ev({ type: "message_delta", delta: { stop_reason: null }, usage: { output_tokens: 4 } }) +
      ev({
        type: "message_delta",
        delta: { stop_reason: "end_turn" },
        usage: { output_tokens: 9, input_tokens: 6, cache_read_input_tokens: 30 }
      }) +
      ev({ type: "message_stop" })
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect({ ...decoded.finish.usage }).toEqual({
      inputTokens: 6 + 2 + 30,
      outputTokens: 9,
      totalTokens: 6 + 2 + 30 + 9,
      cachedInputTokens: 30,
      cacheWriteInputTokens: 2
    })
    expect(decoded.finish.finishReason).toBe("stop")
  })

  it("keeps message_start's input counts when message_delta reports only output", () => {
    const decoded = decodeSse(codec, start({ input_tokens: 12, output_tokens: 1 }) + textBlock(0, "x") + end())
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect({ ...decoded.finish.usage }).toEqual({ inputTokens: 12, outputTokens: 9, totalTokens: 21 })
  })

  it.each(
    [
      ["overloaded_error", "LlmProviderError", true],
      ["api_error", "LlmProviderError", true],
      ["rate_limit_error", "LlmRateLimitError", true],
      ["invalid_request_error", "LlmInvalidRequestError", false]
    ] as const
  )("an in-band %s fails the stream with %s (transient: %s)", (type, tag, transient) => {
    const error = `event: error\ndata: ${JSON.stringify({ type: "error", error: { type, message: "Overloaded" } })}\n\n`
    for (const body of [start() + error, start() + textBlock(0, "Hel") + error]) {
      const decoded = decodeSse(codec, body, [5])
      if (!("_tag" in decoded)) throw new Error("expected a failure")
      expect(decoded._tag).toBe(tag)
      expect(decoded.errorType).toBe(type)
      expect(decoded.status).toBeUndefined()
      expect(isTransient(decoded)).toBe(transient)
    }
  })

  it("recognises an error by its data type alone, or by its event name with a non-JSON body", () => {
    const unnamed = decodeSse(
      codec,
      start() + `data: ${JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "x" } })}\n\n`
    )
    expect("_tag" in unnamed && unnamed._tag).toBe("LlmProviderError")
    const plain = decodeSse(codec, start() + "event: error\ndata: upstream died\n\n")
    expect("_tag" in plain && plain._tag).toBe("LlmProviderError")
    expect("_tag" in plain && plain.message).toContain("upstream died")
  })

  it("fails a stream that ends before message_stop, even after message_delta", () => {
    for (
      const body of [
        start() + textBlock(0, "Hel"),
        start() + textBlock(0, "Hel") +
        ev({ type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2 } })
      ]
    ) {
      const decoded = decodeSse(codec, body)
      expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
      expect("_tag" in decoded && decoded.message).toMatch(/ended before message_stop/)
    }
  })

  it("skips ping and unknown events, and ignores anything after message_stop", () => {
    const body = ev({ type: "ping" }) + start() + ev({ type: "ping" }) +
      ev({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }) +
      ev({ type: "brand_new_event", payload: 1 }) +
      ev({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hi" } }) +
      ev({ type: "content_block_delta", index: 0, delta: { type: "brand_new_delta", x: 1 } }) +
      ev({ type: "content_block_start", index: 1, content_block: { type: "brand_new_block" } }) +
      ev({ type: "content_block_stop", index: 0 }) + ev({ type: "ping" }) + end() +
      ev({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "late" } }) + "data: {garbage\n\n"
    for (const sizes of [[], [1], [9]]) {
      const decoded = decodeSse(codec, body, sizes)
      if ("_tag" in decoded) throw new Error(decoded.message)
      expect(summarize(decoded)).toMatchObject({ text: "hi", finishReason: "stop" })
    }
  })

  it("does not report server tool input (server_tool_use) as a tool call", () => {
    const body = start() +
      ev({
        type: "content_block_start",
        index: 0,
        content_block: { type: "server_tool_use", id: "srvtoolu_1", name: "web_search", input: {} }
      }) +
      ev({
        type: "content_block_delta",
        index: 0,
        delta: { type: "input_json_delta", partial_json: "{\"query\":\"x\"}" }
      }) +
      ev({ type: "content_block_stop", index: 0 }) + textBlock(1, "found") + end()
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.events.map((event) => event._tag)).toEqual(["TextDelta"])
  })

  it("uses a tool_use block's start input when no input_json_delta follows", () => {
    const body = start() +
      ev({
        type: "content_block_start",
        index: 0,
        content_block: { type: "tool_use", id: "t", name: "f", input: { a: 1 } }
      }) +
      ev({ type: "content_block_stop", index: 0 }) + end("tool_use")
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded).toolCalls).toEqual([{ id: "t", name: "f", arguments: { a: 1 } }])
  })

  it("refuses invalid tool JSON instead of passing half an object on", () => {
    for (const json of ["{\"city\": \"Os", "[1, 2]", "42"]) {
      const decoded = decodeSse(codec, start() + toolBlock(0, "t", "f", json) + end("tool_use"))
      expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
      expect("_tag" in decoded && decoded.message).toMatch(/tool call "f" \(t\)/)
    }
  })

  it("fails on a malformed event", () => {
    const decoded = decodeSse(codec, start() + "event: content_block_delta\ndata: {not json\n\n")
    expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
  })
})

describe("Anthropic layer", () => {
  const client = NodeHttpClient.layerUndici
  const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const
  const key = "sk-ant-test-SECRET-0123456789"

  it("has the documented defaults", () => {
    expect(Anthropic.defaults).toMatchObject({
      model: "claude-sonnet-4-20250514",
      baseUrl: "https://api.anthropic.com",
      timeout: "60 seconds",
      maxTokens: 1024
    })
  })

  it.live("sends x-api-key, anthropic-version and anthropic-beta to /v1/messages, and decodes both modes", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Layer.provide(
        Anthropic.layer({ ...fast, baseUrl: server.url, apiKey: Redacted.make(key), anthropicBeta: "beta-1,beta-2" }),
        client
      )
      server.enqueue(
        { kind: "reply", text: "Hello there.", usage: { inputTokens: 4, outputTokens: 3, cacheReadTokens: 2 } },
        {
          kind: "reply",
          text: "Streamed.",
          reasoning: "think",
          toolCalls: [{ id: "toolu_1", name: "f", arguments: { a: 1 } }]
        }
      )
      const result = yield* Llm.complete([Message.system("sys"), Message.user("q")]).pipe(Effect.provide(layer))
      expect(result.content).toBe("Hello there.")
      expect(result.metadata.provider).toBe("anthropic")
      expect({ ...result.usage }).toMatchObject({ inputTokens: 6, outputTokens: 3, cachedInputTokens: 2 })
      const streamed = yield* LlmStream.collect(Llm.stream([Message.user("q")])).pipe(Effect.provide(layer))
      expect(streamed).toMatchObject({ content: "Streamed.", reasoning: "think", finishReason: "tool_calls" })
      expect(streamed.toolCalls.map((call) => ({ ...call }))).toEqual([{
        id: "toolu_1",
        name: "f",
        arguments: { a: 1 }
      }])
      const [first, second] = server.requests
      expect(first!.path).toBe("/v1/messages")
      expect(first!.headers["x-api-key"]).toBe(key)
      expect(first!.headers.authorization).toBeUndefined()
      expect(first!.headers["anthropic-version"]).toBe("2023-06-01")
      expect(first!.headers["anthropic-beta"]).toBe("beta-1,beta-2")
      expect(first!.body).toEqual({
        model: "claude-sonnet-4-20250514",
        max_tokens: 1024,
        // the system prompt ends a cache breakpoint by default
        system: [{ type: "text", text: "sys", cache_control: { type: "ephemeral" } }],
        messages: [{ role: "user", content: [{ type: "text", text: "q" }] }]
      })
      expect(second!.body).toMatchObject({ stream: true, max_tokens: 1024 })
    })))

  it.live("retries an in-band overloaded error that arrives before any content", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Layer.provide(Anthropic.layer({ ...fast, baseUrl: server.url, maxTokens: 64 }), client)
      server.enqueue(
        {
          kind: "reply",
          text: "never",
          inBandError: { afterEvents: 2, type: "overloaded_error", message: "Overloaded" }
        },
        { kind: "reply", text: "second try" }
      )
      const result = yield* LlmStream.collect(Llm.stream([Message.user("q")])).pipe(Effect.provide(layer))
      expect(result.content).toBe("second try")
      expect(result.metadata.attempts).toBe(2)
      expect(server.requests[0]!.headers["x-api-key"]).toBeUndefined()
      expect(server.requests[0]!.body).toMatchObject({ max_tokens: 64 })
    })))

  it.live("layerConfig reads ANTHROPIC_API_KEY, LLM_ANTHROPIC_MODEL and LLM_ANTHROPIC_BASE_URL", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const env = ConfigProvider.fromMap(
        new Map([["ANTHROPIC_API_KEY", key], ["LLM_ANTHROPIC_MODEL", "claude-haiku-4-5"], [
          "LLM_ANTHROPIC_BASE_URL",
          server.url
        ]])
      )
      const layer = Anthropic.layerConfig({ ...fast }).pipe(
        Layer.provide(client),
        Layer.provide(Layer.setConfigProvider(env))
      )
      const result = yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(result.content).toBe("ok")
      expect(server.requests[0]!.headers["x-api-key"]).toBe(key)
      expect(server.requests[0]!.body).toMatchObject({ model: "claude-haiku-4-5" })
      const missing = Anthropic.layerConfig().pipe(
        Layer.provide(client),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
      )
      const error = yield* Effect.flip(Effect.provide(Llm.complete([Message.user("q")]), missing))
      expect(String(error)).toContain("ANTHROPIC_API_KEY")
    })))
})
