/**
 * The fake provider server itself: what it renders is what the official
 * `openai` and `@anthropic-ai/sdk` clients parse, recorded fixtures replay
 * through it to their expected values, and every fault it offers observably
 * happens on the wire.
 */
import Anthropic from "@anthropic-ai/sdk"
import * as Effect from "effect/Effect"
import * as http from "node:http"
import OpenAI from "openai"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as FakeProvider from "./support/FakeProvider.js"
import { fixtureProtocol, fixtureScript, listFixtures, loadExpected, readFixture } from "./support/fixtures.js"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

let server: FakeProvider.FakeProvider
let openai: OpenAI
let anthropic: Anthropic

beforeAll(async () => {
  server = await FakeProvider.start()
  openai = new OpenAI({ apiKey: "test-key", baseURL: `${server.url}/v1`, maxRetries: 0 })
  anthropic = new Anthropic({ apiKey: "test-key", baseURL: server.url, maxRetries: 0 })
})
afterAll(() => server.close())
beforeEach(() => server.reset())

const CHAT = "/v1/chat/completions"
const MESSAGES = "/v1/messages"
const chatBody = (extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o",
  messages: [{ role: "user", content: "Hi" }],
  stream: true,
  ...extra
})
const messagesBody = (extra: Record<string, unknown> = {}) => ({
  model: "claude-sonnet-4-5",
  max_tokens: 1024,
  messages: [{ role: "user", content: "Hi" }],
  stream: true,
  ...extra
})

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** One request over a fresh connection (no pooling), observed byte by byte with `node:http`. */
interface Exchange {
  /** Resolves when the status line and headers arrive; rejects on a connection error first. */
  readonly response: Promise<http.IncomingMessage>
  /** The body received so far. */
  readonly text: () => string
  /** Resolves once `predicate(text)` holds; rejects if the exchange ends before. */
  readonly waitForText: (predicate: (text: string) => boolean) => Promise<void>
  /** Resolves when the exchange is over: `complete` is true only for a fully received body. */
  readonly ended: Promise<{ readonly complete: boolean; readonly error?: Error }>
  /** Closes the connection from the client side. */
  readonly abort: () => void
}

const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Exchange => {
  let text = ""
  let finished = false
  const watchers = new Set<() => void>()
  const poke = () => {
    for (const watcher of [...watchers]) watcher()
  }
  let resolveResponse!: (res: http.IncomingMessage) => void
  let rejectResponse!: (error: Error) => void
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    resolveResponse = resolve
    rejectResponse = reject
  })
  response.catch(() => {})
  let resolveEnded!: (result: { readonly complete: boolean; readonly error?: Error }) => void
  const ended = new Promise<{ readonly complete: boolean; readonly error?: Error }>((resolve) => {
    resolveEnded = resolve
  })
  const end = (result: { readonly complete: boolean; readonly error?: Error }) => {
    if (finished) return
    finished = true
    resolveEnded(result)
    poke()
  }
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)
  const req = http.request(`${server.url}${path}`, {
    method,
    agent: false,
    headers: { ...(payload === undefined ? {} : { "content-type": "application/json" }), ...headers }
  })
  let error: Error | undefined
  req.on("error", (e) => {
    error = e
    rejectResponse(e)
    end({ complete: false, error: e })
  })
  req.on("response", (res) => {
    resolveResponse(res)
    res.setEncoding("utf8")
    res.on("data", (chunk: string) => {
      text += chunk
      poke()
    })
    res.on("error", (e) => {
      error = e
    })
    res.on("close", () => end(error === undefined ? { complete: res.complete } : { complete: res.complete, error }))
  })
  req.end(payload)
  return {
    response,
    text: () => text,
    waitForText: (predicate) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (predicate(text)) {
            watchers.delete(check)
            resolve()
          } else if (finished) {
            watchers.delete(check)
            reject(new Error(`exchange ended before the expected text; got:\n${text}`))
          }
        }
        watchers.add(check)
        check()
      }),
    ended,
    abort: () => req.destroy()
  }
}

/** Sends and waits for the whole body. */
const roundTrip = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
  const exchange = send(method, path, body, headers)
  const res = await exchange.response
  const result = await exchange.ended
  return { status: res.statusCode, headers: res.headers, text: exchange.text(), ...result }
}

/** SSE events of a body: `{ event?, data }` per blank-line separated block; comments listed apart. */
const parseSse = (text: string) => {
  const events: Array<{ event?: string; data: string }> = []
  const comments: Array<string> = []
  for (const block of text.split("\n\n")) {
    if (block === "") continue
    let event: string | undefined
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) comments.push(line)
      else if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("data: ")) data.push(line.slice(6))
    }
    if (data.length > 0) events.push(event === undefined ? { data: data.join("\n") } : { event, data: data.join("\n") })
  }
  return { events, comments }
}

const dataCount = (text: string) => parseSse(text).events.length
const jsonEvents = (text: string) =>
  parseSse(text).events.filter((e) => e.data !== "[DONE]").map((e) => JSON.parse(e.data) as Record<string, any>)

const raw = (value: unknown) => value as Record<string, unknown>

const twoTools: ReadonlyArray<FakeProvider.FakeToolCall> = [
  { id: "call_weather", name: "getWeather", arguments: { location: "Boston, MA", unit: "celsius" } },
  { id: "call_time", name: "getTime", arguments: "{\"timezone\": \"America/New_York\"}" }
]

// ---------------------------------------------------------------------------
// OpenAI SDK
// ---------------------------------------------------------------------------

describe("Chat Completions as the openai SDK parses it", () => {
  it("streams text, reasoning and usage", async () => {
    server.enqueue({
      kind: "reply",
      text: "Hello there, how are you today?",
      reasoning: "The user greets me.",
      chunkSize: 5,
      usage: { inputTokens: 21, outputTokens: 9, cacheReadTokens: 4, reasoningTokens: 3 }
    })
    const stream = await openai.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true }
    })
    let text = ""
    let reasoning = ""
    const finishes: Array<string> = []
    const chunks: Array<OpenAI.ChatCompletionChunk> = []
    for await (const chunk of stream) {
      chunks.push(chunk)
      const choice = chunk.choices[0]
      if (choice === undefined) continue
      text += choice.delta.content ?? ""
      reasoning += (raw(choice.delta)["reasoning_content"] as string | undefined) ?? ""
      if (choice.finish_reason !== null) finishes.push(choice.finish_reason)
    }
    expect(text).toBe("Hello there, how are you today?")
    expect(reasoning).toBe("The user greets me.")
    expect(finishes).toEqual(["stop"])
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" })
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ id: "chatcmpl-fake1", object: "chat.completion.chunk", model: "gpt-4o" })
      expect(typeof chunk.created).toBe("number")
    }
    const last = chunks[chunks.length - 1]!
    expect(last.choices).toEqual([])
    expect(last.usage).toEqual({
      prompt_tokens: 21,
      completion_tokens: 9,
      total_tokens: 30,
      prompt_tokens_details: { cached_tokens: 4 },
      completion_tokens_details: { reasoning_tokens: 3 }
    })
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true)
  })

  it("puts reasoning in `reasoning` when asked, and sends no usage chunk without include_usage", async () => {
    server.enqueue({ kind: "reply", text: "Yes.", reasoning: "Quick check.", reasoningField: "reasoning" })
    const chunks: Array<OpenAI.ChatCompletionChunk> = []
    for await (const chunk of await openai.chat.completions.create({ model: "m", messages: [], stream: true })) {
      chunks.push(chunk)
    }
    const deltas = chunks.map((chunk) => raw(chunk.choices[0]!.delta))
    expect(deltas.map((d) => d["reasoning"] ?? "").join("")).toBe("Quick check.")
    expect(deltas.some((d) => "reasoning_content" in d)).toBe(false)
    expect(chunks.every((chunk) => chunk.choices.length === 1 && !("usage" in chunk))).toBe(true)
    expect(chunks[chunks.length - 1]!.choices[0]).toEqual({
      index: 0,
      delta: {},
      logprobs: null,
      finish_reason: "stop"
    })
  })

  it("streams two parallel tool calls that ChatCompletionStream accumulates", async () => {
    server.enqueue({ kind: "reply", toolCalls: twoTools, argumentsChunkSize: 5 })
    const stream = openai.chat.completions.stream({
      model: "gpt-4.1",
      messages: [{ role: "user", content: "Weather and time in Boston?" }],
      stream_options: { include_usage: true }
    })
    const fragments: Array<Record<string, unknown>> = []
    stream.on("chunk", (chunk) => {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) fragments.push(raw(call))
    })
    const completion = await stream.finalChatCompletion()
    const choice = completion.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expect(choice.message.tool_calls).toEqual([
      {
        id: "call_weather",
        type: "function",
        function: { name: "getWeather", arguments: "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}" }
      },
      {
        id: "call_time",
        type: "function",
        function: { name: "getTime", arguments: "{\"timezone\": \"America/New_York\"}" }
      }
    ])
    expect(completion.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 0, total_tokens: 10 })
    // first fragment per call: index, id, type, name, empty arguments; the rest only index + a piece
    expect(fragments[0]).toEqual({
      index: 0,
      id: "call_weather",
      type: "function",
      function: { name: "getWeather", arguments: "" }
    })
    const firstOfSecond = fragments.findIndex((f) => f["index"] === 1)
    expect(fragments[firstOfSecond]).toEqual({
      index: 1,
      id: "call_time",
      type: "function",
      function: { name: "getTime", arguments: "" }
    })
    for (const fragment of fragments.filter((_, i) => i !== 0 && i !== firstOfSecond)) {
      expect(Object.keys(fragment).sort()).toEqual(["function", "index"])
      expect(Object.keys(fragment["function"] as object)).toEqual(["arguments"])
      expect((fragment["function"] as { arguments: string }).arguments.length).toBeLessThanOrEqual(5)
    }
  })

  it("answers non-streaming requests with text, reasoning, usage and the request id", async () => {
    server.enqueue({
      kind: "reply",
      text: "Paris.",
      reasoning: "Capital of France.",
      usage: { inputTokens: 5, outputTokens: 2 }
    })
    const completion = await openai.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "Capital?" }]
    })
    expect(completion).toEqual({
      id: "chatcmpl-fake1",
      object: "chat.completion",
      created: expect.any(Number),
      model: "gpt-4o",
      choices: [{
        index: 0,
        message: { role: "assistant", content: "Paris.", refusal: null, reasoning_content: "Capital of France." },
        logprobs: null,
        finish_reason: "stop"
      }],
      usage: {
        prompt_tokens: 5,
        completion_tokens: 2,
        total_tokens: 7,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 }
      }
    })
    expect(completion._request_id).toBe("req_1")
  })

  it("answers non-streaming tool calls with content null and arguments as JSON strings", async () => {
    server.enqueue({ kind: "reply", toolCalls: twoTools })
    const completion = await openai.chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "?" }]
    })
    const choice = completion.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expect(choice.message.content).toBeNull()
    expect(choice.message.tool_calls).toEqual([
      {
        id: "call_weather",
        type: "function",
        function: { name: "getWeather", arguments: "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}" }
      },
      {
        id: "call_time",
        type: "function",
        function: { name: "getTime", arguments: "{\"timezone\": \"America/New_York\"}" }
      }
    ])
  })

  it("maps neutral finish reasons and passes raw wire ones through", async () => {
    const cases: ReadonlyArray<readonly [FakeProvider.Reply, string]> = [
      [{ kind: "reply", text: "a", finishReason: "length" }, "length"],
      [{ kind: "reply", text: "a", finishReason: "content_filter" }, "content_filter"],
      [{ kind: "reply", text: "a", toolCalls: twoTools, finishReason: "stop" }, "stop"],
      [{ kind: "reply", text: "a", wireFinishReason: "error" }, "error"]
    ]
    for (const [reply, expected] of cases) {
      server.enqueue(reply, reply)
      const completion = await openai.chat.completions.create({ model: "m", messages: [] })
      expect(completion.choices[0]!.finish_reason).toBe(expected)
      let streamed: string | null = null
      for await (const chunk of await openai.chat.completions.create({ model: "m", messages: [], stream: true })) {
        streamed = chunk.choices[0]?.finish_reason ?? streamed
      }
      expect(streamed).toBe(expected)
    }
  })

  it("turns a status reply into the SDK's typed error with Retry-After and request id", async () => {
    server.enqueue({
      kind: "status",
      status: 429,
      type: "rate_limit_exceeded",
      code: "rate_limit_exceeded",
      message: "Slow down",
      headers: { "retry-after": "3" }
    })
    const error = await openai.chat.completions.create({ model: "m", messages: [] }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toBeInstanceOf(OpenAI.RateLimitError)
    const apiError = error as InstanceType<typeof OpenAI.RateLimitError>
    expect(apiError.status).toBe(429)
    expect(apiError.headers.get("retry-after")).toBe("3")
    expect(apiError.requestID).toBe("req_1")
    expect(apiError.code).toBe("rate_limit_exceeded")
    expect(apiError.type).toBe("rate_limit_exceeded")
    expect(apiError.message).toContain("Slow down")
  })

  it("makes the SDK throw on an in-band error chunk", async () => {
    server.enqueue({
      kind: "reply",
      text: "Some text here",
      inBandError: { afterEvents: 2, type: "server_error", message: "The server had an error" }
    })
    let text = ""
    const failure = await (async () => {
      for await (const chunk of await openai.chat.completions.create({ model: "m", messages: [], stream: true })) {
        text += chunk.choices[0]?.delta.content ?? ""
      }
    })().then(() => undefined, (e: unknown) => e)
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as Error).message).toContain("The server had an error")
    expect(text).toBe("Some")
  })
})

// ---------------------------------------------------------------------------
// Anthropic SDK
// ---------------------------------------------------------------------------

describe("Messages as the @anthropic-ai/sdk parses it", () => {
  it("streams thinking, text and two tool calls that MessageStream accumulates", async () => {
    server.enqueue({
      kind: "reply",
      reasoning: "Two lookups needed.",
      text: "Checking both.",
      toolCalls: twoTools,
      chunkSize: 3,
      argumentsChunkSize: 6,
      usage: { inputTokens: 40, outputTokens: 17, cacheReadTokens: 8, cacheWriteTokens: 2 }
    })
    const stream = anthropic.messages.stream({
      model: "claude-sonnet-4-5",
      max_tokens: 2048,
      messages: [{ role: "user", content: "Weather and time?" }]
    })
    const events: Array<string> = []
    stream.on("streamEvent", (event) => events.push(event.type))
    const message = await stream.finalMessage()
    // MessageStream adds its own bookkeeping fields (parsed_output, stop_details): match the wire fields
    expect(message).toMatchObject({
      id: "msg_fake1",
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5",
      content: [
        { type: "thinking", thinking: "Two lookups needed.", signature: expect.any(String) },
        { type: "text", text: "Checking both." },
        {
          type: "tool_use",
          id: "call_weather",
          name: "getWeather",
          input: { location: "Boston, MA", unit: "celsius" }
        },
        { type: "tool_use", id: "call_time", name: "getTime", input: { timezone: "America/New_York" } }
      ],
      stop_reason: "tool_use",
      stop_sequence: null,
      usage: { input_tokens: 40, cache_creation_input_tokens: 2, cache_read_input_tokens: 8, output_tokens: 17 }
    })
    expect(message.content.length).toBe(4)
    expect(message.usage).toEqual({
      input_tokens: 40,
      cache_creation_input_tokens: 2,
      cache_read_input_tokens: 8,
      output_tokens: 17
    })
    expect((message.content[0] as { signature: string }).signature.length).toBeGreaterThan(0)
    expect(events[0]).toBe("message_start")
    expect(events.slice(-2)).toEqual(["message_delta", "message_stop"])
  })

  it("writes `event:` lines matching data.type, a ping after message_start and blocks in order", async () => {
    server.enqueue({ kind: "reply", reasoning: "hm", text: "Hi!", toolCalls: [twoTools[0]!] })
    const { headers, text } = await roundTrip("POST", MESSAGES, messagesBody())
    expect(headers["content-type"]).toBe("text/event-stream")
    expect(headers["cache-control"]).toBe("no-cache")
    expect(headers["request-id"]).toBe("req_1")
    const { events } = parseSse(text)
    for (const event of events) expect(JSON.parse(event.data).type).toBe(event.event)
    expect(text).toContain("event: ping\ndata: {\"type\": \"ping\"}\n\n")
    const blocks = jsonEvents(text)
      .filter((e) => e["type"] === "content_block_start" || e["type"] === "content_block_stop")
      .map((e) =>
        `${e["type"] === "content_block_start" ? "start" : "stop"}:${e["index"]}:${e["content_block"]?.type ?? ""}`
      )
    expect(blocks).toEqual(["start:0:thinking", "stop:0:", "start:1:text", "stop:1:", "start:2:tool_use", "stop:2:"])
    expect(events.map((e) => e.event).slice(0, 2)).toEqual(["message_start", "ping"])
    const deltas = jsonEvents(text).filter((e) => e["type"] === "content_block_delta" && e["index"] === 0).map((e) =>
      e["delta"].type
    )
    expect(deltas[deltas.length - 1]).toBe("signature_delta")
    expect(
      jsonEvents(text).find((e) => e["type"] === "content_block_start" && e["index"] === 2)!["content_block"].input
    ).toEqual({})
  })

  it("answers non-streaming requests in the Message shape", async () => {
    server.enqueue({
      kind: "reply",
      text: "Done.",
      toolCalls: [twoTools[1]!],
      usage: { inputTokens: 3, outputTokens: 4 }
    })
    const message = await anthropic.messages.create({
      model: "claude-haiku-4-5",
      max_tokens: 100,
      messages: [{ role: "user", content: "x" }]
    })
    expect(message).toEqual({
      id: "msg_fake1",
      type: "message",
      role: "assistant",
      model: "claude-haiku-4-5",
      content: [
        { type: "text", text: "Done." },
        { type: "tool_use", id: "call_time", name: "getTime", input: { timezone: "America/New_York" } }
      ],
      stop_reason: "tool_use",
      stop_sequence: null,
      usage: { input_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 4 }
    })
    expect(message._request_id).toBe("req_1")
  })

  it("maps neutral finish reasons to stop reasons", async () => {
    const cases: ReadonlyArray<readonly [FakeProvider.Reply, string]> = [
      [{ kind: "reply", text: "a" }, "end_turn"],
      [{ kind: "reply", text: "a", finishReason: "length" }, "max_tokens"],
      [{ kind: "reply", text: "a", finishReason: "content_filter" }, "refusal"],
      [{ kind: "reply", text: "a", wireFinishReason: "pause_turn" }, "pause_turn"]
    ]
    for (const [reply, expected] of cases) {
      server.enqueue(reply, reply)
      const message = await anthropic.messages.create({ model: "m", max_tokens: 10, messages: [] })
      expect(message.stop_reason).toBe(expected)
      const streamed = await anthropic.messages.stream({ model: "m", max_tokens: 10, messages: [] }).finalMessage()
      expect(streamed.stop_reason).toBe(expected)
    }
  })

  it("turns a status reply into the SDK's typed error", async () => {
    server.enqueue({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: "Overloaded",
      headers: { "retry-after": "2" }
    })
    const error = await anthropic.messages.create({ model: "m", max_tokens: 10, messages: [] }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toBeInstanceOf(Anthropic.APIError)
    const apiError = error as InstanceType<typeof Anthropic.APIError>
    expect(apiError.status).toBe(529)
    expect(apiError.requestID).toBe("req_1")
    expect(apiError.headers?.get("retry-after")).toBe("2")
    expect(apiError.error).toEqual({
      type: "error",
      error: { type: "overloaded_error", message: "Overloaded" },
      request_id: "req_fake"
    })
  })

  it("makes the SDK throw on an in-band `event: error`", async () => {
    server.enqueue({
      kind: "reply",
      text: "Partial",
      inBandError: { afterEvents: 4, type: "overloaded_error", message: "Overloaded" }
    })
    const stream = anthropic.messages.stream({ model: "m", max_tokens: 10, messages: [] })
    const failure = await stream.finalMessage().then(() => undefined, (e: unknown) => e)
    expect(failure).toBeInstanceOf(Anthropic.APIError)
    expect((failure as Error).message).toContain("Overloaded")
  })
})

// ---------------------------------------------------------------------------
// Recorded fixtures replayed through the SDKs
// ---------------------------------------------------------------------------

describe("recorded fixtures replayed through fixtureScript", () => {
  const chatFixtures = [...listFixtures("openai"), ...listFixtures("openai-compatible")]

  it("lists every fixture with an expected file", () => {
    expect(chatFixtures.length).toBeGreaterThanOrEqual(7)
    expect(listFixtures("anthropic")).toContain("anthropic/anthropic-text.chunks.txt")
    for (const name of [...chatFixtures, ...listFixtures("anthropic")]) {
      expect(loadExpected(name).fixture).toBe(name)
    }
  })

  it("replays `.sse` verbatim and frames `.chunks.txt` per protocol", async () => {
    const sse = "openai/chat-parallel-tool-calls.gpt-4.1.sse"
    server.enqueue(fixtureScript(sse))
    expect((await roundTrip("POST", CHAT, chatBody())).text).toBe(readFixture(sse))

    const chunks = "openai/openai-text.chunks.txt"
    server.enqueue(fixtureScript(chunks, { split: [7, 300, 1] }))
    const chat = (await roundTrip("POST", CHAT, chatBody())).text
    const lines = readFixture(chunks).split("\n").filter((line) => line !== "")
    expect(chat).toBe(lines.map((line) => `data: ${line}\n\n`).join(""))
    expect(chat).not.toContain("[DONE]")

    const ant = "anthropic/anthropic-text.chunks.txt"
    server.enqueue(fixtureScript(ant))
    const messages = (await roundTrip("POST", MESSAGES, messagesBody())).text
    expect(messages.startsWith("event: message_start\ndata: {\"type\":\"message_start\"")).toBe(true)
    expect(parseSse(messages).events.length).toBe(readFixture(ant).split("\n").filter((line) => line !== "").length)
  })

  for (const name of chatFixtures) {
    const derived = loadExpected(name).derived_from_fixture
    if (name.endsWith(".json")) {
      it(`${name}: the openai SDK parses the expected message`, async () => {
        server.enqueue(fixtureScript(name))
        const completion = await openai.chat.completions.create({ model: "m", messages: [] })
        const choice = completion.choices[0]!
        expect(completion.id).toBe(derived.response_id)
        expect(completion.model).toBe(derived.model)
        expect(choice.message.content).toBe(derived.text)
        expect(choice.finish_reason).toBe(derived.finish_reason)
        expect(completion.usage).toEqual(derived.usage)
        const calls = (choice.message.tool_calls ?? []).map((call) =>
          call.type === "function"
            ? { id: call.id, name: call.function.name, arguments: call.function.arguments }
            : call
        )
        expect(calls).toEqual(
          (derived.tool_calls ?? []).map(({ arguments: args, id, name }) => ({ id, name, arguments: args }))
        )
      })
      continue
    }
    it(`${name}: the openai SDK streams the expected text, reasoning, tool calls and usage`, async () => {
      server.enqueue(fixtureScript(name, { split: [13, 211, 2] }))
      let text = ""
      let reasoning = ""
      let finish: string | null = null
      let usage: unknown
      const calls = new Map<number, { id: string; name: string; arguments: string }>()
      for await (const chunk of await openai.chat.completions.create({ model: "m", messages: [], stream: true })) {
        if (chunk.usage) usage = chunk.usage
        const choice = chunk.choices[0]
        if (choice === undefined) continue
        const delta = raw(choice.delta)
        text += choice.delta.content ?? ""
        reasoning += (delta["reasoning"] as string | undefined) ?? (delta["reasoning_content"] as string | undefined) ??
          ""
        finish = choice.finish_reason ?? finish
        for (const call of choice.delta.tool_calls ?? []) {
          const entry = calls.get(call.index) ?? { id: "", name: "", arguments: "" }
          calls.set(call.index, {
            id: call.id ?? entry.id,
            name: call.function?.name ?? entry.name,
            arguments: entry.arguments + (call.function?.arguments ?? "")
          })
        }
      }
      expect(text).toBe(derived.text ?? "")
      expect(reasoning).toBe(derived.reasoning ?? "")
      expect(finish).toBe(derived.finish_reason)
      expect(usage).toEqual(derived.usage)
      expect([...calls.values()]).toEqual(
        (derived.tool_calls ?? []).map(({ arguments: args, id, name }) => ({ id, name, arguments: args }))
      )
    })
  }

  for (const name of listFixtures("anthropic")) {
    const derived = loadExpected(name).derived_from_fixture
    if (name.endsWith(".error.json")) {
      it(`${name}: the anthropic SDK throws the recorded error`, async () => {
        server.enqueue(fixtureScript(name))
        const error = await anthropic.messages.create({ model: "m", max_tokens: 10, messages: [] }).then(
          () => undefined,
          (e: unknown) => e
        )
        expect(error).toBeInstanceOf(Anthropic.BadRequestError)
        const apiError = error as InstanceType<typeof Anthropic.BadRequestError>
        expect(apiError.status).toBe(400)
        expect(apiError.requestID).toBe(derived.request_id)
        expect(apiError.error).toEqual({
          type: "error",
          error: { type: derived["error.type"], message: derived["error.message"] },
          request_id: derived.request_id
        })
      })
      continue
    }
    const expectedContent = (derived.content ?? []).map((block) =>
      block.type === "thinking"
        ? { type: "thinking", thinking: block.thinking, signature: expect.stringMatching(/.+/) }
        : block.type === "text"
        ? { type: "text", text: block.text }
        : { type: block.type, id: block.id, name: block.name, input: block.input }
    )
    if (name.endsWith(".json")) {
      it(`${name}: the anthropic SDK parses the expected message`, async () => {
        server.enqueue(fixtureScript(name))
        const message = await anthropic.messages.create({ model: "m", max_tokens: 10, messages: [] })
        expect(message.id).toBe(derived.message_id)
        expect(message.model).toBe(derived.model)
        expect(message.content).toMatchObject(expectedContent)
        expect(message.stop_reason).toBe(derived.stop_reason)
        expect(message.usage).toEqual(derived.usage)
      })
      continue
    }
    it(`${name}: the anthropic SDK's MessageStream accumulates the expected message`, async () => {
      server.enqueue(fixtureScript(name, { split: [5, 77, 1] }))
      const message = await anthropic.messages.stream({ model: "m", max_tokens: 10, messages: [] }).finalMessage()
      expect(fixtureProtocol(name)).toBe("messages")
      expect(message.id).toBe(derived.message_id)
      expect(message.model).toBe(derived.model)
      expect(message.content).toMatchObject(expectedContent)
      expect(message.content.length).toBe(expectedContent.length)
      expect(message.stop_reason).toBe(derived.stop_reason)
      expect(message.usage).toMatchObject(derived.usage_merged_message_start_then_message_delta ?? {})
    })
  }
})

// ---------------------------------------------------------------------------
// Chat Completions rendering details and quirks
// ---------------------------------------------------------------------------

describe("Chat Completions rendering", () => {
  it("sends headers, the role chunk, deltas in order, the finish chunk, the usage chunk and [DONE]", async () => {
    server.enqueue({ kind: "reply", text: "abcdefghij", chunkSize: 4, reasoning: "xyz", toolCalls: [twoTools[0]!] })
    const { headers, text } = await roundTrip("POST", CHAT, chatBody({ stream_options: { include_usage: true } }))
    expect(headers["content-type"]).toBe("text/event-stream")
    expect(headers["cache-control"]).toBe("no-cache")
    expect(headers["x-request-id"]).toBe("req_1")
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true)
    const chunks = jsonEvents(text)
    const kinds = chunks.map((c) => {
      const choice = c["choices"][0]
      if (choice === undefined) return "usage"
      if (choice.finish_reason !== null) return `finish:${JSON.stringify(choice.delta)}`
      return Object.keys(choice.delta).join("+")
    })
    expect(kinds[0]).toBe("role+content")
    expect(kinds.slice(1, 2)).toEqual(["reasoning_content"])
    expect(kinds.slice(2, 5)).toEqual(["content", "content", "content"])
    expect(kinds.slice(5, -2).every((k) => k === "tool_calls")).toBe(true)
    expect(kinds.slice(-2)).toEqual(["finish:{}", "usage"])
    expect(chunks.map((c) => c["choices"][0]?.delta.content ?? "").join("")).toBe("abcdefghij")
  })

  it("renders the tool-call quirks of local servers", async () => {
    const call = { id: "call_x", name: "f", arguments: { a: 1, b: "two" } }
    server.enqueue(
      { kind: "reply", toolCalls: [call], omitToolCallIndex: true, argumentsChunkSize: 3 },
      { kind: "reply", toolCalls: [call], argumentsAsObject: true },
      { kind: "reply", toolCalls: [call, { name: "g", arguments: "" }], wholeToolCalls: true },
      { kind: "reply", toolCalls: [call], argumentsAsObject: true }
    )
    const fragments = async () =>
      jsonEvents((await roundTrip("POST", CHAT, chatBody())).text).flatMap((c) =>
        c["choices"][0]?.delta.tool_calls ?? []
      )

    const noIndex = await fragments()
    expect(noIndex.length).toBeGreaterThan(2)
    expect(noIndex.every((f: object) => !("index" in f))).toBe(true)
    expect(noIndex.map((f: any) => f.function.arguments).join("")).toBe("{\"a\":1,\"b\":\"two\"}")

    expect(await fragments()).toEqual([{
      index: 0,
      id: "call_x",
      type: "function",
      function: { name: "f", arguments: { a: 1, b: "two" } }
    }])

    expect(await fragments()).toEqual([
      { index: 0, id: "call_x", type: "function", function: { name: "f", arguments: "{\"a\":1,\"b\":\"two\"}" } },
      { index: 1, id: "call_1", type: "function", function: { name: "g", arguments: "" } }
    ])

    const body = JSON.parse((await roundTrip("POST", CHAT, chatBody({ stream: false }))).text)
    expect(body.choices[0].message.tool_calls[0].function.arguments).toEqual({ a: 1, b: "two" })
  })

  it("sends keep-alive comments while streaming", async () => {
    server.enqueue(
      { kind: "reply", text: "hi", keepAlive: { everyMs: 1_000 } },
      { kind: "reply", text: "one two", keepAlive: { everyMs: 2, comment: "still here" }, stallAfterEvents: 2 },
      { kind: "reply", text: "hi", leadingComments: 2 }
    )
    const first = await roundTrip("POST", CHAT, chatBody())
    expect(first.text.startsWith(": OPENROUTER PROCESSING\n\ndata: ")).toBe(true)
    expect(first.complete).toBe(true)

    const stalled = send("POST", CHAT, chatBody())
    await stalled.waitForText((text) => parseSse(text).comments.length >= 4)
    expect(parseSse(stalled.text()).comments.every((c) => c === ": still here")).toBe(true)
    expect(dataCount(stalled.text())).toBe(2)
    stalled.abort()
    await server.waitForClientClose(1)

    const leading = await roundTrip("POST", CHAT, chatBody())
    expect(leading.text.startsWith(": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: ")).toBe(true)
  })

  it("uses the request's model, or the script's model and id", async () => {
    server.enqueue({ kind: "reply", text: "a" }, { kind: "reply", text: "a", model: "other", id: "chatcmpl-x" })
    expect(jsonEvents((await roundTrip("POST", CHAT, chatBody({ model: "my-model" }))).text)[0]).toMatchObject({
      model: "my-model",
      id: "chatcmpl-fake1"
    })
    expect(jsonEvents((await roundTrip("POST", CHAT, chatBody())).text)[0]).toMatchObject({
      model: "other",
      id: "chatcmpl-x"
    })
  })
})

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

describe("faults", () => {
  it("reset: the client gets a connection error", async () => {
    server.enqueue({ kind: "reset" }, { kind: "reset" })
    const exchange = send("POST", CHAT, chatBody())
    await expect(exchange.response).rejects.toThrow()
    expect((await exchange.ended).complete).toBe(false)
    await expect(fetch(`${server.url}${CHAT}`, { method: "POST", body: JSON.stringify(chatBody()) })).rejects.toThrow()
    expect(server.requests.every((r) => !r.closedByClient && !r.finished)).toBe(true)
  })

  it("resetAfterEvents: exactly N events arrive, then the connection breaks", async () => {
    for (const [path, body] of [[CHAT, chatBody()], [MESSAGES, messagesBody()]] as const) {
      server.reset()
      server.enqueue({ kind: "reply", text: "one two three four five", chunkSize: 2, resetAfterEvents: 3 })
      const exchange = send("POST", path, body)
      expect((await exchange.response).statusCode).toBe(200)
      const result = await exchange.ended
      expect(result.complete).toBe(false)
      expect(dataCount(exchange.text())).toBe(3)
      expect(server.requests[0]!.closedByClient).toBe(false)
      expect(server.requests[0]!.finished).toBe(false)
    }
  })

  it("stallAfterEvents: no bytes after N events until the client leaves", async () => {
    server.enqueue({ kind: "reply", text: "one two three four", chunkSize: 3, stallAfterEvents: 2 })
    const exchange = send("POST", CHAT, chatBody())
    await exchange.waitForText((text) => dataCount(text) >= 2)
    await sleep(50)
    expect(dataCount(exchange.text())).toBe(2)
    expect(parseSse(exchange.text()).comments).toEqual([])
    expect(server.requests[0]!.finished).toBe(false)
    exchange.abort()
    await server.waitForClientClose(1)
    expect(server.requests[0]!.closedByClient).toBe(true)
  })

  it("stallKeepAliveMs: only keep-alives after N events (comments for chat, pings for messages)", async () => {
    server.enqueue({ kind: "reply", text: "one two three", stallAfterEvents: 3, stallKeepAliveMs: 2 })
    const chat = send("POST", CHAT, chatBody())
    await chat.waitForText((text) => text.split(": keep-alive\n\n").length > 3)
    expect(dataCount(chat.text())).toBe(3)
    chat.abort()

    server.enqueue({ kind: "reply", text: "one two three", stallAfterEvents: 3, stallKeepAliveMs: 2 })
    const messages = send("POST", MESSAGES, messagesBody())
    await messages.waitForText((text) => parseSse(text).events.filter((e) => e.event === "ping").length >= 4)
    const events = parseSse(messages.text()).events
    expect(events.slice(0, 3).map((e) => e.event)).toEqual(["message_start", "ping", "content_block_start"])
    expect(events.slice(3).every((e) => e.event === "ping")).toBe(true)
    messages.abort()
    await server.waitForClientClose(2)
  })

  it("omitTerminator: the body ends without finish reason or terminator", async () => {
    server.enqueue({ kind: "reply", text: "Cut off", omitTerminator: true }, {
      kind: "reply",
      text: "Cut off",
      omitTerminator: true
    })
    const chat = await roundTrip("POST", CHAT, chatBody({ stream_options: { include_usage: true } }))
    expect(chat.complete).toBe(true)
    expect(chat.text).not.toContain("[DONE]")
    expect(jsonEvents(chat.text).every((c) => c["choices"].length === 1 && c["choices"][0].finish_reason === null))
      .toBe(true)
    expect(jsonEvents(chat.text).map((c) => c["choices"][0].delta.content).join("")).toBe("Cut off")

    const messages = await roundTrip("POST", MESSAGES, messagesBody())
    expect(messages.complete).toBe(true)
    const types = jsonEvents(messages.text).map((e) => e["type"])
    expect(types).not.toContain("message_delta")
    expect(types).not.toContain("message_stop")
    expect(types[types.length - 1]).toBe("content_block_stop")
  })

  it("malformedAfterEvents: N events, then `data: {not json`", async () => {
    server.enqueue({ kind: "reply", text: "abc def", malformedAfterEvents: 2 })
    const { complete, text } = await roundTrip("POST", CHAT, chatBody())
    expect(complete).toBe(true)
    expect(text.endsWith("data: {not json\n\n")).toBe(true)
    expect(dataCount(text)).toBe(3)
  })

  it("inBandError: the protocol's error event after N events, then the end", async () => {
    const error = { afterEvents: 2, type: "server_error", message: "boom", code: "E1" }
    server.enqueue({ kind: "reply", text: "abcdefgh", inBandError: error }, {
      kind: "reply",
      text: "abcdefgh",
      inBandError: error
    })
    const chat = parseSse((await roundTrip("POST", CHAT, chatBody())).text).events
    expect(chat.length).toBe(3)
    expect(JSON.parse(chat[2]!.data)).toEqual({ error: { message: "boom", type: "server_error", code: "E1" } })

    const messages = parseSse((await roundTrip("POST", MESSAGES, messagesBody())).text).events
    expect(messages.length).toBe(3)
    expect(messages[2]).toEqual({
      event: "error",
      data: JSON.stringify({ type: "error", error: { type: "server_error", message: "boom" } })
    })
  })

  it("hang: no answer at all until the client gives up", async () => {
    server.enqueue({ kind: "hang" })
    const exchange = send("POST", CHAT, chatBody({ stream: false }))
    let answered = false
    void exchange.response.then(() => {
      answered = true
    }, () => {})
    await server.waitForRequests(1)
    await tick()
    await sleep(20)
    expect(answered).toBe(false)
    expect(server.openConnections).toBeGreaterThanOrEqual(1)
    exchange.abort()
    await server.waitForClientClose(1)
    expect(server.requests[0]).toMatchObject({ closedByClient: true, finished: false })
  })

  it("headersOnly: status and headers, then no body", async () => {
    server.enqueue({ kind: "headersOnly", headers: { "x-extra": "1" } })
    const exchange = send("POST", CHAT, chatBody())
    const res = await exchange.response
    expect(res.statusCode).toBe(200)
    expect(res.headers["content-type"]).toBe("text/event-stream")
    expect(res.headers["x-extra"]).toBe("1")
    await sleep(20)
    expect(exchange.text()).toBe("")
    exchange.abort()
    await server.waitForClientClose(1)
  })

  it("status: the protocol's error body with Retry-After, or a body as given", async () => {
    server.enqueue(
      { kind: "status", status: 429, headers: { "retry-after": "7" }, type: "rate_limit_error", message: "Too many" },
      { kind: "status", status: 429, headers: { "retry-after": "7" }, type: "rate_limit_error", message: "Too many" },
      { kind: "status", status: 502, body: "<html>Bad Gateway</html>" },
      { kind: "status", status: 503, body: { error: { code: 503, message: "down" } } }
    )
    const chat = await roundTrip("POST", CHAT, chatBody())
    expect(chat.status).toBe(429)
    expect(chat.headers["retry-after"]).toBe("7")
    expect(chat.headers["content-type"]).toBe("application/json")
    expect(JSON.parse(chat.text)).toEqual({
      error: { message: "Too many", type: "rate_limit_error", param: null, code: null }
    })

    const messages = await roundTrip("POST", MESSAGES, messagesBody())
    expect(messages.headers["request-id"]).toBe("req_2")
    expect(JSON.parse(messages.text)).toEqual({
      type: "error",
      error: { type: "rate_limit_error", message: "Too many" },
      request_id: "req_fake"
    })

    const html = await roundTrip("POST", CHAT, chatBody())
    expect([html.status, html.headers["content-type"], html.text]).toEqual([
      502,
      "text/html",
      "<html>Bad Gateway</html>"
    ])
    const json = await roundTrip("POST", CHAT, chatBody())
    expect([json.status, JSON.parse(json.text)]).toEqual([503, { error: { code: 503, message: "down" } }])
  })

  it("raw: bytes exactly as given, optionally left open", async () => {
    const bytes = new TextEncoder().encode("data: {\"x\":1}\r\n\r\n")
    server.enqueue(
      { kind: "raw", status: 201, headers: { "x-a": "b" }, chunks: [": hi\n\n", bytes] },
      { kind: "raw", chunks: ["data: 1\n\n"], end: false }
    )
    const done = await roundTrip("POST", CHAT, chatBody())
    expect([done.status, done.headers["x-a"], done.text, done.complete]).toEqual([
      201,
      "b",
      ": hi\n\ndata: {\"x\":1}\r\n\r\n",
      true
    ])

    const open = send("POST", CHAT, chatBody())
    await open.waitForText((text) => text === "data: 1\n\n")
    expect(server.requests[1]!.finished).toBe(false)
    open.abort()
    await server.waitForClientClose(1)
  })
})

// ---------------------------------------------------------------------------
// Bookkeeping
// ---------------------------------------------------------------------------

describe("requests, routes and lifecycle", () => {
  it("records every request, GETs included", async () => {
    await roundTrip("POST", "/api/v1/chat/completions?beta=1", chatBody({ model: "a/b" }), {
      authorization: "Bearer sk-1",
      "x-title": "T"
    })
    await roundTrip("POST", MESSAGES, messagesBody(), { "x-api-key": "k" })
    const health = await roundTrip("GET", "/health")
    const models = await roundTrip("GET", "/v1/models")
    const missing = await roundTrip("POST", "/v1/embeddings", { input: "x" })
    const notJson = await roundTrip("POST", CHAT, "{oops")

    expect(server.requests.map((r) => [r.method, r.path, r.protocol])).toEqual([
      ["POST", "/api/v1/chat/completions", "chat"],
      ["POST", "/v1/messages", "messages"],
      ["GET", "/health", "other"],
      ["GET", "/v1/models", "other"],
      ["POST", "/v1/embeddings", "other"],
      ["POST", "/v1/chat/completions", "chat"]
    ])
    const first = server.requests[0]!
    expect(first.headers["authorization"]).toBe("Bearer sk-1")
    expect(first.headers["x-title"]).toBe("T")
    expect(first.body).toEqual(chatBody({ model: "a/b" }))
    expect(first.rawBody).toBe(JSON.stringify(chatBody({ model: "a/b" })))
    expect(first).toMatchObject({ requestId: "req_1", finished: true, closedByClient: false })
    expect(server.requests[1]!.headers["x-api-key"]).toBe("k")
    expect(server.requests[5]!.body).toBeUndefined()
    expect(server.requests[5]!.rawBody).toBe("{oops")
    expect(notJson.status).toBe(200)

    expect([health.status, JSON.parse(health.text)]).toEqual([200, { status: "ok" }])
    expect([models.status, JSON.parse(models.text)]).toEqual([
      200,
      { object: "list", data: [{ id: "fake-model", object: "model", owned_by: "fake" }] }
    ])
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.text).error).toMatchObject({ type: "invalid_request_error", param: null, code: null })
  })

  it("scripts health, defaults and the queue, and reset restores them", async () => {
    server.setHealth(503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
    const loading = await roundTrip("GET", "/health")
    expect([loading.status, JSON.parse(loading.text).error.message]).toEqual([503, "Loading model"])

    server.setDefault({ kind: "reply", text: "default" })
    server.enqueue({ kind: "reply", text: "queued" })
    const contentOf = async () =>
      JSON.parse((await roundTrip("POST", CHAT, chatBody({ stream: false }))).text).choices[0].message.content
    expect(await contentOf()).toBe("queued")
    expect(await contentOf()).toBe("default")
    expect(await contentOf()).toBe("default")

    server.enqueue({ kind: "reply", text: "left over" })
    server.reset()
    expect(server.requests).toEqual([])
    expect(await contentOf()).toBe("ok")
    expect((await roundTrip("GET", "/health")).status).toBe(200)
    expect(server.requests[0]!.requestId).toBe("req_1")
  })

  it("answers a GET route as set (JSON or text), before the built-in ones; reset removes it", async () => {
    server.setRoute("/props", { status: 200, body: { total_slots: 4 } })
    server.setRoute("/v1/models", { status: 503, body: { error: { message: "Loading model" } } })
    server.setRoute("/version", { status: 404, body: "Not Found" })
    const props = await roundTrip("GET", "/props?autoload=1")
    const models = await roundTrip("GET", "/v1/models")
    const version = await roundTrip("GET", "/version")
    expect([props.status, props.headers["content-type"], JSON.parse(props.text)]).toEqual([
      200,
      "application/json",
      { total_slots: 4 }
    ])
    expect([models.status, JSON.parse(models.text).error.message]).toEqual([503, "Loading model"])
    expect([version.status, version.headers["content-type"], version.text]).toEqual([404, "text/plain", "Not Found"])
    // a POST to a routed path is not answered by the route
    expect((await roundTrip("POST", "/props", {})).status).toBe(404)
    server.setRoute("/props", undefined)
    expect((await roundTrip("GET", "/props")).status).toBe(404)
    server.reset()
    expect((await roundTrip("GET", "/v1/models")).status).toBe(200)
    expect((await roundTrip("GET", "/version")).status).toBe(404)
    expect((await roundTrip("GET", "/version")).headers["content-type"]).toBe("application/json")
  })

  it("script headers override the defaults", async () => {
    server.enqueue({ kind: "reply", text: "a", headers: { "x-request-id": "custom", "x-generation-id": "gen-1" } })
    const { headers } = await roundTrip("POST", CHAT, chatBody())
    expect(headers["x-request-id"]).toBe("custom")
    expect(headers["x-generation-id"]).toBe("gen-1")
  })

  it("detects a client closing a stream mid-way, and not a completed one", async () => {
    server.enqueue({
      kind: "reply",
      text: "a long answer that keeps coming for quite a while",
      chunkSize: 1,
      delayMs: 10
    })
    const controller = new AbortController()
    const response = await fetch(`${server.url}${CHAT}`, {
      method: "POST",
      body: JSON.stringify(chatBody()),
      signal: controller.signal
    })
    const reader = response.body!.getReader()
    const first = await reader.read()
    expect(first.done).toBe(false)
    controller.abort()
    await server.waitForClientClose(1)
    expect(server.requests[0]).toMatchObject({ closedByClient: true, finished: false })

    await roundTrip("POST", CHAT, chatBody())
    expect(server.requests[1]).toMatchObject({ closedByClient: false, finished: true })
    await expect(server.waitForClientClose(2, 20)).rejects.toThrow(/timed out/)
  })

  it("make is a scoped resource and layer provides FakeProviderServer", async () => {
    const url = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const fake = yield* FakeProvider.make
      fake.enqueue({ kind: "reply", text: "scoped" })
      const body = yield* Effect.promise(() =>
        fetch(`${fake.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(chatBody({ stream: false })) })
          .then((r) => r.json())
      )
      expect((body as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe("scoped")
      expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      return fake.url
    })))
    await expect(fetch(`${url}/health`)).rejects.toThrow()

    const port = await Effect.runPromise(
      Effect.map(FakeProvider.FakeProviderServer, (fake) => fake.port).pipe(Effect.provide(FakeProvider.layer))
    )
    expect(port).toBeGreaterThan(0)
  })
})
