/**
 * The model's reasoning belongs to its message: `ReasoningPart`s on
 * `AssistantMessage`, kept by `Toolkit.run`, `Toolkit.stream`,
 * `Conversation` and `ConversationContext` (JSON included), and sent back in
 * the next request of a tool loop, over real loopback HTTP, for every backend.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Context from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import type * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { CompletionResult, ResponseMetadata, Usage } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

/** Reasoning parts as plain data, to compare with `toEqual`. */
const plain = (parts: ReadonlyArray<Message.ReasoningPart> | undefined) => parts?.map((part) => ({ ...part }))

const weather = Tool.make("get_weather", {
  description: "Current weather in a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed({ city, sky: "rain" })
})
const kit = Toolkit.make(weather)

describe("ReasoningPart and AssistantMessage.reasoning", () => {
  it("Message.assistant takes reasoning parts as plain data and keeps them as ReasoningPart values", () => {
    const message = Message.assistant("", [{ id: "c1", name: "get_weather", arguments: { city: "Oslo" } }], {
      reasoning: [
        { text: "Need the weather.", signature: "sig-1", provider: "anthropic" },
        { text: "", redacted: "opaque", provider: "anthropic" }
      ]
    })
    expect(message.reasoning?.every((part) => part instanceof Message.ReasoningPart)).toBe(true)
    expect(plain(message.reasoning)).toEqual([
      { text: "Need the weather.", signature: "sig-1", provider: "anthropic" },
      { text: "", redacted: "opaque", provider: "anthropic" }
    ])
  })

  it("is absent when there is none (no empty array on the message)", () => {
    expect("reasoning" in Message.assistant("Hi")).toBe(false)
    expect("reasoning" in Message.assistant("Hi", [], { reasoning: [] })).toBe(false)
    expect(Schema.encodeSync(Message.Message)(Message.assistant("Hi"))).toEqual({
      role: "assistant",
      content: "Hi",
      toolCalls: []
    })
  })

  it("CompletionResult.toMessage builds the assistant message of a reply, reasoning included", () => {
    const result = new CompletionResult({
      content: "",
      model: "m",
      finishReason: "tool_calls",
      toolCalls: [new Message.ToolCall({ id: "c1", name: "functions.get_weather", arguments: { city: "Oslo" } })],
      usage: Usage.empty,
      reasoning: "Need the weather.",
      reasoningParts: [new Message.ReasoningPart({ text: "Need the weather.", provider: "local" })],
      metadata: new ResponseMetadata({ provider: "local", attempts: 1, latencyMillis: 1 })
    })
    const message = result.toMessage()
    expect(message.toolCalls.map((call) => call.name)).toEqual(["functions.get_weather"])
    expect(plain(message.reasoning)).toEqual([{ text: "Need the weather.", provider: "local" }])
    // the tool calls recorded may differ from the reply's (the loop records resolved names)
    const renamed = result.toMessage({ toolCalls: [{ id: "c1", name: "get_weather", arguments: { city: "Oslo" } }] })
    expect(renamed.toolCalls.map((call) => call.name)).toEqual(["get_weather"])
    expect(plain(renamed.reasoning)).toEqual([{ text: "Need the weather.", provider: "local" }])
  })
})

describe("ConversationContext keeps reasoning", () => {
  const parts = [
    { text: "Need the weather.", signature: "sig-1", provider: "anthropic" },
    { text: "", redacted: "opaque==", provider: "anthropic" }
  ]

  it("survives encode, JSON text and decode", () => {
    const context = Context.make({ systemMessage: "Be brief." })
      .addUser("Weather in Oslo?")
      .addAssistant(
        Message.assistant("", [{ id: "c1", name: "get_weather", arguments: { city: "Oslo" } }], { reasoning: parts })
      )
      .addToolResult({ toolCallId: "c1", name: "get_weather", content: "rain" })
      .addAssistant(Message.assistant("Rainy.", [], { reasoning: [{ text: "Say it.", provider: "local" }] }))
    const restored = Context.decode(JSON.parse(JSON.stringify(context.encode())))
    const assistants = restored.history.filter((message) => message.role === "assistant")
    expect(assistants.map((message) => plain(message.reasoning))).toEqual([parts, [{
      text: "Say it.",
      provider: "local"
    }]])
    expect(assistants[0]!.reasoning![0]).toBeInstanceOf(Message.ReasoningPart)
    expect(restored.encode()).toEqual(context.encode())
  })

  it("addAssistant of a CompletionResult or of plain data keeps its reasoning", () => {
    const result = new CompletionResult({
      content: "Rainy.",
      model: "m",
      finishReason: "stop",
      toolCalls: [],
      usage: Usage.empty,
      reasoningParts: [new Message.ReasoningPart({ text: "Say it.", provider: "local" })],
      metadata: new ResponseMetadata({ provider: "local", attempts: 1, latencyMillis: 1 })
    })
    const fromResult = Context.make().addUser("q").addAssistant(result)
    expect(plain(fromResult.history[1]!.role === "assistant" ? fromResult.history[1].reasoning : undefined)).toEqual([
      { text: "Say it.", provider: "local" }
    ])
    const fromData = Context.make().addUser("q").addAssistant({ content: "A.", reasoning: parts })
    expect(plain(fromData.history[1]!.role === "assistant" ? fromData.history[1].reasoning : undefined)).toEqual(parts)
  })

  it("an interrupted tool step keeps its text and its reasoning, without the unanswered calls", () => {
    const context = Context.make()
      .addUser("q")
      .addAssistant(Message.assistant("Let me check.", [{ id: "c1", name: "get_weather", arguments: {} }], {
        reasoning: parts
      }))
    const [, repaired] = context.messages
    expect(repaired).toMatchObject({ role: "assistant", content: "Let me check.", toolCalls: [] })
    expect(plain(repaired!.role === "assistant" ? repaired.reasoning : undefined)).toEqual(parts)
  })
})

/** What each backend's second request of a tool loop carries for the first step's assistant message. */
const expectedStep: Readonly<Record<string, unknown>> = {
  local: {
    role: "assistant",
    content: "",
    reasoning_content: "Need the weather.",
    tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }]
  },
  openai: {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }]
  },
  openrouter: {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }]
  },
  anthropic: {
    role: "assistant",
    content: [
      { type: "thinking", thinking: "Need the weather.", signature: "c2lnbmF0dXJl" },
      // the default cache breakpoint: the last block before the newest user turn
      {
        type: "tool_use",
        id: "c1",
        name: "get_weather",
        input: { city: "Oslo" },
        cache_control: { type: "ephemeral" }
      }
    ]
  }
}

/** The parts the first step's reply decodes to on each backend (the fake signs Anthropic thinking). */
const expectedParts = (provider: string) =>
  provider === "anthropic"
    ? [{ text: "Need the weather.", signature: "c2lnbmF0dXJl", provider }]
    : [{ text: "Need the weather.", provider }]

for (const backend of backends) {
  describe(`the tool loop keeps reasoning with its step: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer(), backend.layer(server.url)))
        )
      }))

    const sentStep = (server: FakeProvider.FakeProvider) =>
      (server.requests[1]!.body as { messages: ReadonlyArray<unknown> }).messages[1]

    /** A tool step with reasoning (in pieces of `chunkSize` characters when streamed), then the answer. */
    const script = (server: FakeProvider.FakeProvider, chunkSize = 4) =>
      server.enqueue(
        {
          kind: "reply",
          reasoning: "Need the weather.",
          toolCalls: [{ id: "c1", name: "get_weather", arguments: { city: "Oslo" } }],
          chunkSize
        },
        { kind: "reply", text: "Rainy.", chunkSize }
      )

    it.live("Toolkit.run records the step's reasoning and sends it back as the backend takes it", () =>
      withServer((server) =>
        Effect.gen(function*() {
          script(server)
          const { added } = yield* Toolkit.run([Message.user("Weather in Oslo?")], kit)
          const step = added[0]!
          expect(step.role === "assistant" && plain(step.reasoning)).toEqual(expectedParts(backend.provider))
          expect(sentStep(server)).toEqual(expectedStep[backend.name])
        })
      ))

    it.live("Toolkit.stream records the same, whatever the size of the streamed pieces", () =>
      withServer((server) =>
        Effect.gen(function*() {
          for (const chunkSize of [1, 3, 100]) {
            server.clearRequests()
            script(server, chunkSize)
            const steps: Array<ReadonlyArray<Message.Message>> = []
            const result = yield* LlmStream.collect(
              Toolkit.stream([Message.user("Weather in Oslo?")], kit, {
                onStep: (added) => Effect.sync(() => steps.push(added))
              })
            )
            expect(result.content).toBe("Rainy.")
            const step = steps[0]![0]!
            expect(step.role === "assistant" && plain(step.reasoning), `chunkSize ${chunkSize}`).toEqual(
              expectedParts(backend.provider)
            )
            expect(sentStep(server), `chunkSize ${chunkSize}`).toEqual(expectedStep[backend.name])
          }
        })
      ))

    it.live("Conversation.send and sendStream keep the reasoning in the recorded history", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          script(server)
          yield* conversation.send("Weather in Oslo?", { toolkit: kit })
          script(server, 2)
          yield* Stream.runDrain(conversation.sendStream("And in Bergen?", { toolkit: kit }))
          const steps = (yield* conversation.context).history.filter((message) =>
            message.role === "assistant" && message.toolCalls.length > 0
          )
          expect(steps.map((message) => message.role === "assistant" && plain(message.reasoning))).toEqual([
            expectedParts(backend.provider),
            expectedParts(backend.provider)
          ])
        })
      ))
  })
}
