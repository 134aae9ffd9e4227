import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import * as Message from "../src/Message.js"
import { context, decodeSse, summarize } from "./support/decode.js"

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url))
const codec = ChatCompletions.make()

interface Expected {
  readonly derived_from_fixture: {
    readonly response_id: string
    readonly model: string
    readonly text: string | null
    readonly finish_reason: string
    readonly usage: {
      readonly prompt_tokens: number
      readonly completion_tokens: number
      readonly total_tokens: number
      readonly prompt_tokens_details?: { readonly cached_tokens?: number }
      readonly completion_tokens_details?: { readonly reasoning_tokens?: number }
    }
    readonly reasoning?: string
    readonly done_sentinel_count?: number
    readonly tool_calls?: ReadonlyArray<{ id: string; name: string; arguments_parsed: unknown }>
  }
}

const expectedOf = (file: string): Expected["derived_from_fixture"] =>
  (JSON.parse(readFileSync(`${file}.expected.json`, "utf8")) as Expected).derived_from_fixture

/** The bytes the provider sent: `.sse` verbatim, `.chunks.txt` one `data:` event per line. */
const sseBody = (file: string): string => {
  const raw = readFileSync(file, "utf8")
  if (file.endsWith(".sse")) return raw
  const lines = raw.split("\n").filter((line) => line.trim() !== "")
  const done = (expectedOf(file).done_sentinel_count ?? 0) > 0 ? "data: [DONE]\n\n" : ""
  return lines.map((line) => `data: ${line}\n\n`).join("") + done
}

const streamed = ["openai", "openai-compatible"].flatMap((dir) =>
  readdirSync(join(fixtures, dir))
    .filter((name) => name.endsWith(".chunks.txt") || name.endsWith(".sse"))
    .map((name) => join(dir, name))
)
const whole = readdirSync(join(fixtures, "openai")).filter((name) =>
  /\.json$/.test(name) && !name.endsWith(".expected.json")
).map((name) => join("openai", name))

const expectedUsage = (usage: Expected["derived_from_fixture"]["usage"]) => ({
  inputTokens: usage.prompt_tokens,
  outputTokens: usage.completion_tokens,
  totalTokens: usage.total_tokens,
  ...(usage.prompt_tokens_details?.cached_tokens === undefined
    ? {}
    : { cachedInputTokens: usage.prompt_tokens_details.cached_tokens }),
  ...(usage.completion_tokens_details?.reasoning_tokens === undefined
    ? {}
    : { reasoningTokens: usage.completion_tokens_details.reasoning_tokens })
})

describe("ChatCompletions codec on recorded streams", () => {
  it.each(streamed)("%s decodes to its expected reply under every chunking", (name) => {
    const file = join(fixtures, name)
    const expected = expectedOf(file)
    const body = sseBody(file)
    // each chunking read whole, and read event by event as a stream's first read is
    for (const sizes of [[], [1], [7], [64], [3, 1, 200, 17]]) {
      for (const early of [false, true]) {
        const decoded = decodeSse(codec, body, sizes, early)
        if ("_tag" in decoded) throw new Error(decoded.message)
        const result = summarize(decoded)
        expect(result.text).toBe(expected.text ?? "")
        expect(result.reasoning).toBe(expected.reasoning ?? "")
        expect(result.model).toBe(expected.model)
        expect(result.responseId).toBe(expected.response_id)
        expect(result.finishReason).toBe(expected.finish_reason)
        expect({ ...result.usage }).toEqual(expectedUsage(expected.usage))
        expect(result.toolCalls).toEqual(
          (expected.tool_calls ?? []).map((call) => ({
            id: call.id,
            name: call.name,
            arguments: call.arguments_parsed
          }))
        )
      }
    }
  })

  it.each(whole)("%s decodes to its expected reply", (name) => {
    const file = join(fixtures, name)
    const expected = expectedOf(file)
    const decoded = codec.decodeResponse(JSON.parse(readFileSync(file, "utf8")), context)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(decoded.content).toBe(expected.text ?? "")
    expect(decoded.model).toBe(expected.model)
    expect(decoded.responseId).toBe(expected.response_id)
    expect(decoded.finishReason).toBe(expected.finish_reason)
    expect({ ...decoded.usage }).toEqual(expectedUsage(expected.usage))
    expect(decoded.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }))).toEqual(
      (expected.tool_calls ?? []).map((call) => ({ id: call.id, name: call.name, arguments: call.arguments_parsed }))
    )
  })
})

const chunk = (delta: object, finish: string | null = null, extra: object = {}) =>
  `data: ${
    JSON.stringify({ id: "c1", model: "m", choices: [{ index: 0, delta, finish_reason: finish }], ...extra })
  }\n\n`

describe("ChatCompletions stream decoding", () => {
  it("fails a stream that ends without [DONE] and without a finish reason", () => {
    const decoded = decodeSse(codec, chunk({ role: "assistant", content: "" }) + chunk({ content: "Hel" }))
    expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
    expect("_tag" in decoded && decoded.message).toMatch(/ended before the reply was complete/)
  })

  it("accepts a finish reason without [DONE], and usage on the finish chunk", () => {
    const decoded = decodeSse(
      codec,
      chunk({ content: "Hi" }) +
        chunk({}, "stop", { usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    )
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded)).toMatchObject({ text: "Hi", finishReason: "stop" })
    expect(decoded.finish.usage.totalTokens).toBe(4)
  })

  it("skips comments and keep-alives, and decodes multi-byte UTF-8 split across reads", () => {
    const body = ": OPENROUTER PROCESSING\n\n" + chunk({ content: "héllo 👋 世界" }) + ": ping\n\n" +
      chunk({}, "stop") +
      "data: [DONE]\n\n"
    for (const sizes of [[1], [2], [3], [5]]) {
      const decoded = decodeSse(codec, body, sizes)
      if ("_tag" in decoded) throw new Error(decoded.message)
      expect(summarize(decoded).text).toBe("héllo 👋 世界")
    }
  })

  it("turns an in-band error chunk into the matching error class", () => {
    const overloaded = decodeSse(
      codec,
      chunk({ content: "a" }) + `data: ${JSON.stringify({ error: { message: "boom", type: "server_error" } })}\n\n`
    )
    expect("_tag" in overloaded && overloaded._tag).toBe("LlmProviderError")
    const openrouter = decodeSse(
      codec,
      `data: ${
        JSON.stringify({
          error: { code: 429, message: "slow down" },
          choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }]
        })
      }\n\n`
    )
    expect("_tag" in openrouter && openrouter._tag).toBe("LlmRateLimitError")
  })

  it("fails on a malformed chunk", () => {
    const decoded = decodeSse(codec, chunk({ content: "a" }) + "data: {not json\n\n")
    expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
  })

  it("assembles tool calls by index, id or position, whole or fragmented, string or object arguments", () => {
    const noIndex =
      chunk({ tool_calls: [{ id: "a", type: "function", function: { name: "f", arguments: "{\"x\":" } }] }) +
      chunk({ tool_calls: [{ function: { arguments: "1}" } }] }) +
      chunk({ tool_calls: [{ id: "b", function: { name: "g", arguments: { y: 2 } } }] }) +
      chunk({}, "tool_calls")
    const decoded = decodeSse(codec, noIndex)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded).toolCalls).toEqual([
      { id: "a", name: "f", arguments: { x: 1 } },
      { id: "b", name: "g", arguments: { y: 2 } }
    ])
    expect(decoded.finish.finishReason).toBe("tool_calls")
  })

  it("gives a stable synthetic id to calls without one, and reports tool_calls even when the server says stop", () => {
    const body = chunk({ tool_calls: [{ index: 0, id: "", function: { name: "f", arguments: "" } }] }) +
      chunk({}, "stop")
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded).toolCalls).toEqual([{ id: "call_0", name: "f", arguments: {} }])
    expect(decoded.finish.finishReason).toBe("tool_calls")
  })

  it("refuses invalid tool arguments instead of passing half an object on", () => {
    const body = chunk({ tool_calls: [{ index: 0, id: "a", function: { name: "f", arguments: "{\"x\": 1" } }] }) +
      chunk({}, "tool_calls")
    const decoded = decodeSse(codec, body)
    expect("_tag" in decoded && decoded._tag).toBe("LlmResponseError")
    expect("_tag" in decoded && decoded.message).toMatch(/not valid JSON/)
  })

  it("reads reasoning from either field and never mixes it into the text", () => {
    const body = chunk({ reasoning_content: "think " }) + chunk({ reasoning: "more" }) + chunk({ content: "answer" }) +
      chunk({}, "stop")
    const decoded = decodeSse(codec, body)
    if ("_tag" in decoded) throw new Error(decoded.message)
    expect(summarize(decoded)).toMatchObject({ text: "answer", reasoning: "think more" })
  })
})

describe("ChatCompletions encoding", () => {
  it("encodes a tool round-trip, options and tool choice", () => {
    const encoded = ChatCompletions.make({ emptyAssistantContent: "", maxTokensField: "max_tokens" }).encode({
      model: "m",
      stream: true,
      messages: [
        Message.system("be brief"),
        Message.user("weather?"),
        Message.assistant("", [{ id: "c1", name: "weather", arguments: { city: "Oslo" } }]),
        Message.tool({ toolCallId: "c1", name: "weather", content: "sunny" })
      ],
      options: {
        maxTokens: 50,
        temperature: 0.2,
        topP: 0.9,
        stop: ["\n\n"],
        tools: [Message.toolDefinition({ name: "weather", description: "d", parameters: { type: "object" } })],
        toolChoice: { name: "weather" }
      }
    })
    expect(encoded).toEqual({
      body: {
        model: "m",
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 50,
        temperature: 0.2,
        top_p: 0.9,
        stop: ["\n\n"],
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "weather?" },
          {
            role: "assistant",
            content: "",
            tool_calls: [{
              id: "c1",
              type: "function",
              function: { name: "weather", arguments: "{\"city\":\"Oslo\"}" }
            }]
          },
          { role: "tool", tool_call_id: "c1", content: "sunny" }
        ],
        tools: [{ type: "function", function: { name: "weather", description: "d", parameters: { type: "object" } } }],
        tool_choice: { type: "function", function: { name: "weather" } }
      }
    })
  })

  it("sends null content for a tool-only assistant turn to OpenAI", () => {
    const encoded = codec.encode({
      model: "m",
      stream: false,
      messages: [
        Message.user("q"),
        Message.assistant("", [{ id: "c1", name: "f", arguments: {} }]),
        Message.tool({ toolCallId: "c1", name: "f", content: "r" })
      ],
      options: { maxTokens: 5 }
    })
    expect(encoded).toMatchObject({
      body: { max_completion_tokens: 5, messages: [{}, { role: "assistant", content: null }, {}] }
    })
  })
})
