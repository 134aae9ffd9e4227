/**
 * Tools, the tool loop and the conversation service, through the fake
 * provider server over HTTP, for every backend (so both wire formats).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Context from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { validateRequest } from "../src/internal/validate.js"
import type * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as TokenCounter from "../src/TokenCounter.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const weather = Tool.make("get_weather", {
  description: "Current weather in a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed({ city, temperature: 4, sky: "rain" })
})
const failing = Tool.make("flaky", {
  description: "Always fails",
  parameters: Schema.Struct({}),
  handler: () => Effect.fail(new Error("service unavailable"))
})
const crashing = Tool.make("crash", {
  description: "Throws",
  parameters: Schema.Struct({}),
  handler: () =>
    Effect.sync(() => {
      throw new Error("boom")
    })
})
const kit = Toolkit.make(weather, failing, crashing)

describe("Tool.make", () => {
  it("derives the JSON Schema sent to the model from the Schema", () => {
    expect(weather.definition.parameters).toEqual({
      type: "object",
      required: ["city"],
      properties: { city: { type: "string" } },
      additionalProperties: false
    })
    expect(weather.definition.description).toBe("Current weather in a city")
  })
})

for (const backend of backends) {
  describe(`tools and conversations: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>,
      options: Context.ContextOptions = {}
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const llm = backend.layer(server.url)
        return yield* f(server).pipe(Effect.provide(Layer.provideMerge(Conversation.layer(options), llm)))
      }))

    /** The messages the server received in request `i`, as the wire carries them. */
    const sent = (server: FakeProvider.FakeProvider, i: number) =>
      (server.requests[i]!.body as { messages: ReadonlyArray<Record<string, unknown>> }).messages

    /** Tool results in request `i`: [id, content, isError] whatever the protocol. */
    const toolResults = (server: FakeProvider.FakeProvider, i: number) =>
      sent(server, i).flatMap((message) => {
        if (message.role === "tool") return [[message.tool_call_id, message.content, false]]
        if (Array.isArray(message.content)) {
          return (message.content as ReadonlyArray<Record<string, unknown>>).filter((block) =>
            block.type === "tool_result"
          )
            .map((block) => [block.tool_use_id, block.content, block.is_error === true])
        }
        return []
      })

    it.live("remembers the user's name across turns (the seed's exchange)", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: "Nice to meet you, Alice!" }, {
            kind: "reply",
            text: "Your name is Alice."
          })
          yield* conversation.send("My name is Alice.")
          const second = yield* conversation.send("What is my name?")
          expect(second.content).toBe("Your name is Alice.")
          const texts = JSON.stringify(sent(server, 1))
          expect(texts).toContain("My name is Alice.")
          expect(texts).toContain("Nice to meet you, Alice!")
          expect(texts).toContain("What is my name?")
          expect((yield* conversation.context).turns.length).toBe(2)
        }), { systemMessage: "You are a helpful assistant." }))

    it.live("runs one tool call, sends its result, and returns the final answer", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue(
            { kind: "reply", toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }] },
            { kind: "reply", text: "It is 4°C and raining in Oslo." }
          )
          const result = yield* conversation.send("Weather in Oslo?", { toolkit: kit })
          expect(result.content).toBe("It is 4°C and raining in Oslo.")
          expect(server.requests.length).toBe(2)
          expect(toolResults(server, 1)).toEqual([[
            "call_1",
            "{\"city\":\"Oslo\",\"temperature\":4,\"sky\":\"rain\"}",
            false
          ]])
          const history = (yield* conversation.context).messages
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
          expect(validateRequest(history, {})).toBeUndefined()
        })
      ))

    it.live("runs two parallel calls and sends both results after their calls", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(
            {
              kind: "reply",
              toolCalls: [
                { id: "a", name: "get_weather", arguments: { city: "Oslo" } },
                { id: "b", name: "get_weather", arguments: { city: "Bergen" } }
              ]
            },
            { kind: "reply", text: "Both rainy." }
          )
          const { added, result, steps } = yield* Toolkit.run([Message.user("Oslo and Bergen?")], kit)
          expect(result.content).toBe("Both rainy.")
          expect(steps).toBe(2)
          expect(added.map((m) => m.role)).toEqual(["assistant", "tool", "tool", "assistant"])
          expect(toolResults(server, 1).map(([id]) => id)).toEqual(["a", "b"])
        })
      ))

    it.live("sends unknown tools, invalid arguments, failures and crashes back as error results", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(
            {
              kind: "reply",
              toolCalls: [
                { id: "u", name: "no_such_tool", arguments: {} },
                { id: "i", name: "get_weather", arguments: { town: 3 } },
                { id: "f", name: "flaky", arguments: {} },
                { id: "c", name: "crash", arguments: {} }
              ]
            },
            { kind: "reply", text: "Sorry, the tools failed." }
          )
          const { result } = yield* Toolkit.run([Message.user("go")], kit)
          expect(result.content).toBe("Sorry, the tools failed.")
          const results = toolResults(server, 1)
          expect(results.map(([id]) => id)).toEqual(["u", "i", "f", "c"])
          expect(String(results[0]![1])).toMatch(/unknown tool "no_such_tool"/)
          expect(String(results[1]![1])).toMatch(/invalid arguments for get_weather/)
          expect(String(results[2]![1])).toMatch(/flaky failed: service unavailable/)
          expect(String(results[3]![1])).toMatch(/crash crashed: boom/)
          if (backend.protocol === "messages") expect(results.every(([, , isError]) => isError)).toBe(true)
        })
      ))

    it.live("fails the run on a tool error when told to", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", toolCalls: [{ id: "f", name: "flaky", arguments: {} }] })
          const error = yield* Effect.flip(Toolkit.run([Message.user("go")], kit, { failOnToolError: true }))
          expect(error._tag).toBe("ToolExecutionError")
          expect(error._tag === "ToolExecutionError" && error.reason).toBe("handler_failed")
          expect(server.requests.length).toBe(1)
        })
      ))

    it.live("stops at maxSteps with finishReason length and a valid history", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.setDefault({
            kind: "reply",
            text: "Checking.",
            toolCalls: [{ id: "x", name: "get_weather", arguments: { city: "Oslo" } }]
          })
          const { added, result, steps } = yield* Toolkit.run([Message.user("loop")], kit, { maxSteps: 3 })
          expect(steps).toBe(3)
          expect(server.requests.length).toBe(3)
          expect(result.finishReason).toBe("length")
          expect(validateRequest([Message.user("loop"), ...added], {})).toBeUndefined()
        })
      ))

    it.live("streams the text of every step and runs tools between steps", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue(
            {
              kind: "reply",
              text: "Let me check. ",
              toolCalls: [{ id: "w", name: "get_weather", arguments: { city: "Oslo" } }]
            },
            { kind: "reply", text: "Rain in Oslo." }
          )
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(conversation.sendStream("Weather?", { toolkit: kit }))
          )
          const text = events.flatMap((event) => (event._tag === "TextDelta" ? [event.text] : [])).join("")
          expect(text).toBe("Let me check. Rain in Oslo.")
          expect(events.filter((event) => event._tag === "Finish").length).toBe(1)
          const history = (yield* conversation.context).messages
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
          expect(toolResults(server, 1).map(([id]) => id)).toEqual(["w"])
        })
      ))

    it.live("a failed turn leaves the conversation as it was", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: "First answer." }, { kind: "status", status: 400, message: "bad" })
          yield* conversation.send("one")
          const before = yield* conversation.context
          const error = yield* Effect.flip(conversation.send("two"))
          expect(error._tag).toBe("LlmInvalidRequestError")
          expect(yield* conversation.context).toBe(before)
          server.enqueue({ kind: "status", status: 400, message: "bad" })
          yield* Effect.flip(Stream.runDrain(conversation.sendStream("three")))
          expect(yield* conversation.context).toBe(before)
        })
      ))

    it.live("barge-in records what the listener heard, marked interrupted", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: "One two three four five six seven.", chunkSize: 4, delayMs: 10 })
          const heard = Chunk.toReadonlyArray(
            yield* Stream.runCollect(
              Stream.take(conversation.sendStream("Count."), 3).pipe(
                Stream.filterMap((event) => (event._tag === "TextDelta" ? Option.some(event.text) : Option.none()))
              )
            )
          ).join("")
          yield* Effect.promise(() => server.waitForClientClose(1))
          const history = (yield* conversation.context).history
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: heard, interrupted: true })
          expect(heard.length).toBeGreaterThan(0)
          expect("One two three four five six seven.".startsWith(heard)).toBe(true)
        })
      ))

    it.live("an interruption during tool calls leaves no unresolved tool call", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const started = yield* Deferred.make<void>()
          const slow = Tool.make("slow", {
            description: "never finishes",
            parameters: Schema.Struct({}),
            handler: () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
          })
          server.enqueue({
            kind: "reply",
            text: "Working on it.",
            toolCalls: [{ id: "s", name: "slow", arguments: {} }]
          })
          const fiber = yield* Effect.fork(
            Stream.runDrain(conversation.sendStream("do it", { toolkit: Toolkit.make(slow) }))
          )
          yield* Deferred.await(started)
          yield* Fiber.interrupt(fiber)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: "Working on it.", toolCalls: [], interrupted: true })
        })
      ))

    it.live("concurrent sends never interleave their turns", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.setDefault({ kind: "reply", text: "ack", delayMs: 5 })
          yield* Effect.all([
            conversation.send("a"),
            Stream.runDrain(conversation.sendStream("b")),
            conversation.send("c"),
            conversation.send("d")
          ], { concurrency: "unbounded" })
          const history = (yield* conversation.context).history
          expect(history.length).toBe(8)
          expect(history.map((m) => m.role)).toEqual([
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
          ])
          expect(new Set(history.filter((m) => m.role === "user").map((m) => m.content))).toEqual(
            new Set(["a", "b", "c", "d"])
          )
        }), { maxTurns: 10 }))
  })
}

describe("Conversation with a TokenCounter", () => {
  it.live("prunes with the counter provided as a service", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "ok" })
      // every message costs 10 "tokens": a budget of 35 fits a user message and one earlier turn, not two whole turns
      const counted: Array<string> = []
      const counter = TokenCounter.layer((message) => (counted.push(message.role), 10))
      const layer = Conversation.layer({ maxTurns: 10, maxTokens: 35 }).pipe(
        Layer.provide(Layer.merge(backends[0]!.layer(server.url), counter))
      )
      const context = yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        yield* conversation.send("one")
        yield* conversation.send("two")
        yield* conversation.send("three")
        return yield* conversation.context
      }).pipe(Effect.provide(layer))
      expect(counted.length).toBeGreaterThan(0)
      expect(context.history.map((m) => m.content)).toEqual(["three", "ok"])
      const sent = (server.requests[2]!.body as { messages: ReadonlyArray<{ content: string }> }).messages
      expect(sent.map((m) => m.content)).toEqual(["two", "ok", "three"])
    })))
})
