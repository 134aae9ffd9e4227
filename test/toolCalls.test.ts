/**
 * Tool calls as the wire delivers them (issue 12): calls without a name,
 * hostile indexes, spliced Anthropic streams, duplicate ids and wrapped names
 * in the tool loop, and a `tool_calls` finish without calls. Over loopback
 * against the fake provider, streamed replies under several chunkings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Conversation from "../src/Conversation.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { type Backend, backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const hi = [Message.user("Hi")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }
const chat = backends.find((b) => b.name === "local")!
const anthropic = backends.find((b) => b.name === "anthropic")!

/** Runs `f` against a fresh fake server with `backend`'s layer (no retries) and a conversation over it. */
const withServer = <A, E>(
  backend: Backend,
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    const llm = backend.layer(server.url, noRetry)
    return yield* f(server).pipe(Effect.provide(Layer.provideMerge(Conversation.layer(), llm)))
  }))

const split = (body: string, size: number): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < body.length; i += size) out.push(body.slice(i, i + size))
  return out
}

/** The ways a body is delivered: whole, byte by byte, in uneven reads, one event per read. */
const chunkings = (body: string): ReadonlyArray<FakeProvider.RawReply> => [
  { kind: "raw", chunks: [body] },
  { kind: "raw", chunks: split(body, 1) },
  { kind: "raw", chunks: split(body, 7) },
  { kind: "raw", chunks: body.split(/(?<=\n\n)/), delayMs: 2 }
]

/** A Chat Completions stream: one chunk per delta, then the finish chunk and `[DONE]`. */
const chatSse = (deltas: ReadonlyArray<object>, finishReason: string): string =>
  [...deltas.map((delta) => ({ delta, finish_reason: null })), { delta: {}, finish_reason: finishReason }]
    .map((choice) =>
      `data: ${
        JSON.stringify({
          id: "chatcmpl-1",
          object: "chat.completion.chunk",
          model: "m",
          choices: [{ index: 0, ...choice }]
        })
      }\n\n`
    )
    .join("") + "data: [DONE]\n\n"

const event = (body: { readonly type: string; readonly [field: string]: unknown }): string =>
  `event: ${body.type}\ndata: ${JSON.stringify(body)}\n\n`

const messageStart = (id: string) =>
  event({
    type: "message_start",
    message: {
      id,
      type: "message",
      role: "assistant",
      model: "m",
      content: [],
      usage: { input_tokens: 3, output_tokens: 1 }
    }
  })

/** An Anthropic stream: message_start, the given events, message_delta with `stopReason`, message_stop. */
const messagesSse = (events: ReadonlyArray<string>, stopReason: string, id = "msg_1"): string =>
  messageStart(id) + events.join("") +
  event({ type: "message_delta", delta: { stop_reason: stopReason }, usage: { output_tokens: 5 } }) +
  event({ type: "message_stop" })

const toolUse = (index: number, id: string, name: string, json: string): Array<string> => [
  event({ type: "content_block_start", index, content_block: { type: "tool_use", id, name, input: {} } }),
  event({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: json } }),
  event({ type: "content_block_stop", index })
]

const textBlock = (index: number, text: string): Array<string> => [
  event({ type: "content_block_start", index, content_block: { type: "text", text: "" } }),
  event({ type: "content_block_delta", index, delta: { type: "text_delta", text } }),
  event({ type: "content_block_stop", index })
]

/** The stream's outcome under every chunking of `body`: all must agree; returns the first. */
const streamedUnderEveryChunking = (server: FakeProvider.FakeProvider, body: string) =>
  Effect.gen(function*() {
    const outcomes: Array<unknown> = []
    for (const reply of chunkings(body)) {
      server.enqueue(reply)
      const outcome = yield* Effect.either(LlmStream.collect(Llm.stream(hi)))
      outcomes.push(
        outcome._tag === "Left"
          ? { error: outcome.left._tag, message: outcome.left.message }
          : {
            content: outcome.right.content,
            finishReason: outcome.right.finishReason,
            toolCalls: outcome.right.toolCalls.map((call) => ({
              id: call.id,
              name: call.name,
              arguments: call.arguments
            }))
          }
      )
    }
    for (const outcome of outcomes) expect(outcome).toEqual(outcomes[0])
    return outcomes[0] as
      | { error: string; message: string }
      | { content: string; finishReason: string; toolCalls: Array<{ id: string; name: string; arguments: unknown }> }
  })

const json = (body: object): FakeProvider.RawReply => ({
  kind: "raw",
  headers: { "content-type": "application/json" },
  chunks: [JSON.stringify(body)]
})

const chatBody = (message: object, finishReason: string) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: null, ...message }, finish_reason: finishReason }],
  usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 }
})

const messagesBody = (content: ReadonlyArray<object>, stopReason: string) => ({
  id: "msg_1",
  type: "message",
  role: "assistant",
  model: "m",
  content,
  stop_reason: stopReason,
  usage: { input_tokens: 3, output_tokens: 5 }
})

const completed = Effect.either(Llm.complete(hi))

// ---------------------------------------------------------------------------
// 1. A call without a name
// ---------------------------------------------------------------------------

describe("a tool call without a function name is an LlmResponseError", () => {
  it.live("chat, streamed: no name ever, or an empty one", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        const never = chatSse([
          { tool_calls: [{ index: 0, id: "call_a", type: "function", function: { arguments: "{\"city\":" } }] },
          { tool_calls: [{ index: 0, function: { arguments: "\"Oslo\"}" } }] }
        ], "tool_calls")
        const empty = chatSse([
          { tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "", arguments: "{}" } }] }
        ], "tool_calls")
        for (const body of [never, empty]) {
          expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
            error: "LlmResponseError",
            message: "local (gpt-oss:20b): tool call 0 (call_a) has no function name"
          })
        }
      })))

  it.live("chat, streamed: a name that arrives in a later fragment is kept", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        const body = chatSse([
          { tool_calls: [{ index: 0, id: "call_a", type: "function", function: { arguments: "{\"city\":" } }] },
          { tool_calls: [{ index: 0, function: { name: "get_weather", arguments: "\"Oslo\"}" } }] }
        ], "tool_calls")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          content: "",
          finishReason: "tool_calls",
          toolCalls: [{ id: "call_a", name: "get_weather", arguments: { city: "Oslo" } }]
        })
      })))

  it.live("chat, complete: an empty name", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        server.enqueue(
          json(
            chatBody(
              { tool_calls: [{ id: "call_a", type: "function", function: { name: "", arguments: "{}" } }] },
              "tool_calls"
            )
          )
        )
        const outcome = yield* completed
        expect(outcome._tag === "Left" && [outcome.left._tag, outcome.left.message]).toEqual([
          "LlmResponseError",
          "local (gpt-oss:20b): tool call 0 (call_a) has no function name"
        ])
      })))

  it.live("anthropic, streamed and complete: an empty name", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        const body = messagesSse(toolUse(0, "toolu_a", "", "{}"), "tool_use")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          error: "LlmResponseError",
          message: "anthropic (claude-sonnet-4-20250514): tool call 0 (toolu_a) has no function name"
        })
        server.enqueue(json(messagesBody([{ type: "tool_use", id: "toolu_a", name: "", input: {} }], "tool_use")))
        const outcome = yield* completed
        expect(outcome._tag === "Left" && [outcome.left._tag, outcome.left.message]).toEqual([
          "LlmResponseError",
          "anthropic (claude-sonnet-4-20250514): tool call 0 (toolu_a) has no function name"
        ])
      })))
})

// ---------------------------------------------------------------------------
// 2. Indexes
// ---------------------------------------------------------------------------

describe("tool-call indexes", () => {
  const hostile = [4294967294, -1, 1.5, 2 ** 32, 1024, "0", true]

  it.live("chat, streamed: an index that is not a small non-negative integer is an LlmResponseError, at once", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        for (const index of hostile) {
          const body = chatSse([
            {
              tool_calls: [{
                index: 0,
                id: "call_a",
                type: "function",
                function: { name: "get_weather", arguments: "{}" }
              }]
            },
            {
              tool_calls: [{
                index,
                id: "call_b",
                type: "function",
                function: { name: "get_weather", arguments: "{}" }
              }]
            }
          ], "tool_calls")
          const started = Date.now()
          expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
            error: "LlmResponseError",
            message: `local (gpt-oss:20b): tool call index ${JSON.stringify(index)} is not an integer from 0 to 1023`
          })
          expect(Date.now() - started).toBeLessThan(2000)
        }
      })))

  it.live("chat, streamed: gaps and disorder keep every call, in index order", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        const call = (index: number, city: string) => ({
          tool_calls: [{
            index,
            id: `call_${city}`,
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify({ city }) }
          }]
        })
        const body = chatSse([call(7, "Rome"), call(0, "Oslo"), call(1023, "Lima"), call(3, "Bergen")], "tool_calls")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          content: "",
          finishReason: "tool_calls",
          toolCalls: ["Oslo", "Bergen", "Rome", "Lima"].map((city) => ({
            id: `call_${city}`,
            name: "get_weather",
            arguments: { city }
          }))
        })
      })))

  it.live("anthropic, streamed: a tool_use block at a hostile index is an LlmResponseError; gaps are fine", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        for (const index of [-1, 1.5, 2 ** 32, 4294967294]) {
          const body = messagesSse([
            ...toolUse(0, "toolu_a", "get_weather", "{}"),
            ...toolUse(index, "toolu_b", "get_weather", "{}")
          ], "tool_use")
          const started = Date.now()
          expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
            error: "LlmResponseError",
            message: `anthropic (claude-sonnet-4-20250514): tool call index ${index} is not an integer from 0 to 1023`
          })
          expect(Date.now() - started).toBeLessThan(2000)
        }
        const body = messagesSse([
          ...textBlock(0, "Checking."),
          ...toolUse(2, "toolu_a", "get_weather", "{\"city\":\"Oslo\"}"),
          ...toolUse(9, "toolu_b", "get_weather", "{\"city\":\"Rome\"}")
        ], "tool_use")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          content: "Checking.",
          finishReason: "tool_calls",
          toolCalls: [
            { id: "toolu_a", name: "get_weather", arguments: { city: "Oslo" } },
            { id: "toolu_b", name: "get_weather", arguments: { city: "Rome" } }
          ]
        })
      })))
})

// ---------------------------------------------------------------------------
// 3. A spliced Anthropic stream
// ---------------------------------------------------------------------------

describe("anthropic: a second message_start", () => {
  const spliced = messageStart("msg_1") +
    [...textBlock(0, "First."), ...toolUse(1, "toolu_a", "get_weather", "{\"city\":")].join("") +
    messagesSse(toolUse(1, "toolu_b", "get_weather", "{\"city\":\"Rome\"}"), "tool_use", "msg_2")

  it.live("with another id inside an open message is an LlmResponseError", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        expect(yield* streamedUnderEveryChunking(server, spliced)).toEqual({
          error: "LlmResponseError",
          message:
            "anthropic (claude-sonnet-4-20250514): a second message_start (\"msg_2\") arrived inside message \"msg_1\": the stream is spliced"
        })
      })))

  it.live("runs no tool of the second message in the streaming tool loop", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        let runs = 0
        const counted = Tool.make("get_weather", {
          description: "Weather",
          parameters: Schema.Struct({ city: Schema.String }),
          handler: () => Effect.sync(() => ++runs)
        })
        server.enqueue({ kind: "raw", chunks: [spliced] })
        const error = yield* Effect.flip(Stream.runDrain(Toolkit.stream(hi, Toolkit.make(counted))))
        expect(error._tag).toBe("LlmResponseError")
        expect(runs).toBe(0)
        expect(server.requests.length).toBe(1)
      })))

  it.live("a tool_use block opened twice at one index is an LlmResponseError, not a call that disappears", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        const body = messagesSse([
          ...toolUse(1, "toolu_a", "get_weather", "{\"city\":\"Oslo\"}"),
          ...toolUse(1, "toolu_b", "get_weather", "{\"city\":\"Rome\"}")
        ], "tool_use")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          error: "LlmResponseError",
          message: "anthropic (claude-sonnet-4-20250514): tool_use block 1 started twice"
        })
      })))

  it.live("a repeat of the same message's start is harmless", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        const body = messageStart("msg_1") + textBlock(0, "One.").join("") +
          messagesSse(toolUse(1, "toolu_a", "get_weather", "{\"city\":\"Oslo\"}"), "tool_use", "msg_1")
        expect(yield* streamedUnderEveryChunking(server, body)).toEqual({
          content: "One.",
          finishReason: "tool_calls",
          toolCalls: [{ id: "toolu_a", name: "get_weather", arguments: { city: "Oslo" } }]
        })
      })))
})

// ---------------------------------------------------------------------------
// 4. The model's mistakes in the tool loop
// ---------------------------------------------------------------------------

const weather = Tool.make("get_weather", {
  description: "Current weather in a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed(`${city}: rain`)
})
const kit = Toolkit.make(weather)

/** What the follow-up request must carry, per wire: the assistant's calls, then each result paired with its call. */
const followUp = (
  backend: Backend,
  calls: ReadonlyArray<{ id: string; name: string; city: string }>,
  results: ReadonlyArray<{ id: string; content: string; isError?: boolean }>
) =>
  backend.protocol === "chat"
    ? [
      { role: "user", content: "Hi" },
      {
        role: "assistant",
        content: "",
        tool_calls: calls.map((call) => ({
          id: call.id,
          type: "function",
          function: { name: call.name, arguments: JSON.stringify({ city: call.city }) }
        }))
      },
      ...results.map((result) => ({ role: "tool", tool_call_id: result.id, content: result.content }))
    ]
    : [
      { role: "user", content: [{ type: "text", text: "Hi" }] },
      {
        role: "assistant",
        // the last block before the newest user turn carries the cache breakpoint placed by default
        content: calls.map((call, i) => ({
          type: "tool_use",
          id: call.id,
          name: call.name,
          input: { city: call.city },
          ...(i === calls.length - 1 ? { cache_control: { type: "ephemeral" } } : {})
        }))
      },
      {
        role: "user",
        content: results.map((result) => ({
          type: "tool_result",
          tool_use_id: result.id,
          content: result.content,
          ...(result.isError ? { is_error: true } : {})
        }))
      }
    ]

/** The follow-up request's body: the first request's, with the exact history `messages`. */
const expectFollowUp = (server: FakeProvider.FakeProvider, messages: ReadonlyArray<object>) => {
  expect(server.requests.length).toBe(2)
  const first = server.requests[0]!.body as Record<string, unknown>
  expect(server.requests[1]!.body).toEqual({ ...first, messages })
}

type Loop = (server: FakeProvider.FakeProvider) => Effect.Effect<string, unknown, Llm.Llm | Conversation.Conversation>

/** Every path through the tool loop, each returning the final text. */
const loops: ReadonlyArray<readonly [string, Loop]> = [
  ["Toolkit.run", () => Effect.map(Toolkit.run(hi, kit), ({ result }) => result.content)],
  [
    "Toolkit.stream",
    () =>
      Effect.map(
        Stream.runCollect(LlmStream.textDeltas(Toolkit.stream(hi, kit))),
        (texts) => [...texts].join("")
      )
  ],
  [
    "Conversation.send",
    () =>
      Effect.flatMap(
        Conversation.Conversation,
        (conversation) => Effect.map(conversation.send("Hi", { toolkit: kit }), (result) => result.content)
      )
  ],
  [
    "Conversation.sendStream",
    () =>
      Effect.flatMap(
        Conversation.Conversation,
        (conversation) =>
          Effect.map(
            Stream.runCollect(LlmStream.textDeltas(conversation.sendStream("Hi", { toolkit: kit }))),
            (texts) => [...texts].join("")
          )
      )
  ]
]

for (const backend of [chat, anthropic]) {
  for (const [name, loop] of loops) {
    describe(`the tool loop forgives the model's mistakes: ${backend.name}, ${name}`, () => {
      it.live("two calls with the same id get unique ids, each result paired with its call", () =>
        withServer(backend, (server) =>
          Effect.gen(function*() {
            server.enqueue(
              {
                kind: "reply",
                toolCalls: [
                  { id: "dup", name: "get_weather", arguments: { city: "Oslo" } },
                  { id: "dup", name: "get_weather", arguments: { city: "Rome" } }
                ]
              },
              { kind: "reply", text: "Rain in both." }
            )
            expect(yield* loop(server)).toBe("Rain in both.")
            expectFollowUp(
              server,
              followUp(
                backend,
                [{ id: "dup", name: "get_weather", city: "Oslo" }, { id: "dup_2", name: "get_weather", city: "Rome" }],
                [{ id: "dup", content: "Oslo: rain" }, { id: "dup_2", content: "Rome: rain" }]
              )
            )
          })))

      it.live("a call without an id gets one no other call has", () =>
        withServer(backend, (server) =>
          Effect.gen(function*() {
            const taken = backend.protocol === "chat" ? "call_1" : "toolu_1"
            server.enqueue(
              {
                kind: "reply",
                toolCalls: [
                  { id: taken, name: "get_weather", arguments: { city: "Oslo" } },
                  { id: "", name: "get_weather", arguments: { city: "Rome" } }
                ]
              },
              { kind: "reply", text: "Done." }
            )
            expect(yield* loop(server)).toBe("Done.")
            expectFollowUp(
              server,
              followUp(
                backend,
                [{ id: taken, name: "get_weather", city: "Oslo" }, {
                  id: `${taken}_2`,
                  name: "get_weather",
                  city: "Rome"
                }],
                [{ id: taken, content: "Oslo: rain" }, { id: `${taken}_2`, content: "Rome: rain" }]
              )
            )
          })))

      it.live("a name with a wrapper prefix runs the tool; an unknown name goes back as an error result", () =>
        withServer(backend, (server) =>
          Effect.gen(function*() {
            server.enqueue(
              {
                kind: "reply",
                toolCalls: [
                  { id: "a", name: "functions.get_weather", arguments: { city: "Oslo" } },
                  { id: "b", name: "tools.get_weather", arguments: { city: "Rome" } },
                  { id: "c", name: "functions.get_news", arguments: { city: "Lima" } },
                  { id: "d", name: "web search", arguments: { city: "Bonn" } }
                ]
              },
              { kind: "reply", text: "Done." }
            )
            expect(yield* loop(server)).toBe("Done.")
            expectFollowUp(
              server,
              followUp(
                backend,
                [
                  { id: "a", name: "get_weather", city: "Oslo" },
                  { id: "b", name: "get_weather", city: "Rome" },
                  { id: "c", name: "get_news", city: "Lima" },
                  { id: "d", name: "web_search", city: "Bonn" }
                ],
                [
                  { id: "a", content: "Oslo: rain" },
                  { id: "b", content: "Rome: rain" },
                  { id: "c", content: "unknown tool \"functions.get_news\"; available: get_weather", isError: true },
                  { id: "d", content: "unknown tool \"web search\"; available: get_weather", isError: true }
                ]
              )
            )
          })))
    })
  }
}

describe("ids at decode, without the loop", () => {
  it.live("chat, streamed without index (Ollama): two whole calls with the same id stay two calls", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        const whole = (city: string) => ({
          tool_calls: [{
            id: "call_x",
            type: "function",
            function: { name: "get_weather", arguments: JSON.stringify({ city }) }
          }]
        })
        expect(yield* streamedUnderEveryChunking(server, chatSse([whole("Oslo"), whole("Rome")], "tool_calls")))
          .toEqual({
            content: "",
            finishReason: "tool_calls",
            toolCalls: [
              { id: "call_x", name: "get_weather", arguments: { city: "Oslo" } },
              { id: "call_x_2", name: "get_weather", arguments: { city: "Rome" } }
            ]
          })
      })))

  it.live("chat, complete: duplicate and missing ids", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        const call = (id: string | undefined) => ({
          ...(id === undefined ? {} : { id }),
          type: "function",
          function: { name: "f", arguments: "{}" }
        })
        server.enqueue(
          json(chatBody({ tool_calls: [call("call_1"), call(undefined), call("call_1"), call("")] }, "tool_calls"))
        )
        const outcome = yield* completed
        expect(outcome._tag === "Right" && outcome.right.toolCalls.map((c) => c.id)).toEqual([
          "call_1",
          "call_1_2",
          "call_1_3",
          "call_3"
        ])
      })))
})

// ---------------------------------------------------------------------------
// 5. A tool_calls finish without calls
// ---------------------------------------------------------------------------

describe("a tool_calls finish without any call is reported as stop", () => {
  it.live("chat, streamed and complete", () =>
    withServer(chat, (server) =>
      Effect.gen(function*() {
        expect(yield* streamedUnderEveryChunking(server, chatSse([{ content: "Hello." }], "tool_calls"))).toEqual({
          content: "Hello.",
          finishReason: "stop",
          toolCalls: []
        })
        server.enqueue(json(chatBody({ content: "Hello.", tool_calls: [] }, "tool_calls")))
        const outcome = yield* completed
        expect(outcome._tag === "Right" && [outcome.right.content, outcome.right.finishReason]).toEqual([
          "Hello.",
          "stop"
        ])
      })))

  it.live("anthropic, streamed and complete", () =>
    withServer(anthropic, (server) =>
      Effect.gen(function*() {
        expect(yield* streamedUnderEveryChunking(server, messagesSse(textBlock(0, "Hello."), "tool_use"))).toEqual({
          content: "Hello.",
          finishReason: "stop",
          toolCalls: []
        })
        server.enqueue(json(messagesBody([{ type: "text", text: "Hello." }], "tool_use")))
        const outcome = yield* completed
        expect(outcome._tag === "Right" && [outcome.right.content, outcome.right.finishReason]).toEqual([
          "Hello.",
          "stop"
        ])
      })))
})
