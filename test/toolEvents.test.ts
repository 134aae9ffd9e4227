/**
 * The tool loop's progress events: `ToolExecutionStart` / `ToolExecutionEnd`
 * around each call, live while the others run, and `Silence` when a step's
 * model call is slow to start (`silenceAfter`). Over loopback to the fake
 * provider for both wire protocols, and on the `TestClock` with the scripted
 * `Llm` where time matters.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as ConversationContext from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { LlmInvalidRequestError } from "../src/errors.js"
import { validateRequest } from "../src/internal/validate.js"
import type * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { ResponseMetadata, StreamEvent, Usage } from "../src/Reply.js"
import * as LlmStream from "../src/Stream.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

/** The events of a stream, deltas left out: what a test of the loop's order reads. */
const outline = (events: ReadonlyArray<StreamEvent>): ReadonlyArray<string> =>
  events.flatMap((event) => {
    switch (event._tag) {
      case "TextDelta":
      case "ReasoningDelta":
      case "ToolCallDelta":
        return []
      case "ToolCallStart":
        return [`ToolCallStart:${event.id}`]
      case "ToolCall":
        return [`ToolCall:${event.toolCall.id}`]
      case "ToolExecutionStart":
        return [`Start:${event.toolCall.id}`]
      case "ToolExecutionEnd":
        return [`End:${event.toolCall.id}`]
      case "Silence":
        return [`Silence:${event.step}`]
      default:
        return [event._tag]
    }
  })

const textOf = (events: ReadonlyArray<StreamEvent>) =>
  events.flatMap((event) => (event._tag === "TextDelta" ? [event.text] : [])).join("")

const weather = Tool.make("get_weather", {
  description: "Current weather in a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed({ city, temperature: 4 })
})
const failing = Tool.make("flaky", {
  description: "Always fails",
  parameters: Schema.Struct({}),
  handler: () => Effect.fail(new Error("service unavailable"))
})

for (const backend of backends.filter((b) => b.name === "local" || b.name === "anthropic")) {
  describe(`tool progress events: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer({ maxTurns: 10 }), backend.layer(server.url)))
        )
      }))

    it.live("one tool: its start and end come after the step's call, before the next step; sendStream passes them", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue(
            {
              kind: "reply",
              text: "Let me check. ",
              toolCalls: [{ id: "w", name: "functions.get_weather", arguments: { city: "Oslo" } }]
            },
            { kind: "reply", text: "Rain in Oslo." }
          )
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(conversation.sendStream("Weather?", { toolkit: Toolkit.make(weather) }))
          )
          expect(outline(events)).toEqual(["ToolCallStart:w", "ToolCall:w", "Start:w", "End:w", "Finish"])
          expect(textOf(events)).toBe("Let me check. Rain in Oslo.")
          const start = events.find((event) => event._tag === "ToolExecutionStart")!
          const end = events.find((event) => event._tag === "ToolExecutionEnd")!
          // the call as the history records it: the wrapper prefix resolved
          expect(start.toolCall).toMatchObject({ id: "w", name: "get_weather", arguments: { city: "Oslo" } })
          expect(end.toolCall).toEqual(start.toolCall)
          expect(end.result).toMatchObject({
            toolCallId: "w",
            name: "get_weather",
            content: "{\"city\":\"Oslo\",\"temperature\":4}"
          })
          expect(end.result.isError).toBeFalsy()
          expect(end.durationMillis).toBeGreaterThanOrEqual(0)
          const history = (yield* conversation.context).messages
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
        })
      ))

    it.live("several calls run at once: each end streams as it happens, the fast one's before the slow one's", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          // the slow call ends only once the consumer has seen the fast call's end: only live events get there
          const slow = Tool.make("slow", {
            description: "waits for the gate",
            parameters: Schema.Struct({}),
            handler: () => Effect.as(Deferred.await(gate), "slow done")
          })
          const fast = Tool.make("fast", {
            description: "answers at once",
            parameters: Schema.Struct({}),
            handler: () => Effect.succeed("fast done")
          })
          server.enqueue(
            {
              kind: "reply",
              text: "",
              toolCalls: [{ id: "s", name: "slow", arguments: {} }, { id: "f", name: "fast", arguments: {} }]
            },
            { kind: "reply", text: "Both done." }
          )
          const events = Chunk.toReadonlyArray(
            yield* Toolkit.stream([Message.user("go")], Toolkit.make(slow, fast)).pipe(
              Stream.tap((event) =>
                event._tag === "ToolExecutionEnd" && event.toolCall.id === "f"
                  ? Deferred.succeed(gate, undefined)
                  : Effect.void
              ),
              Stream.runCollect,
              Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the events did not stream live" })
            )
          )
          const order = outline(events).filter((tag) => tag.startsWith("Start") || tag.startsWith("End"))
          expect(order.slice(0, 2).sort()).toEqual(["Start:f", "Start:s"])
          expect(order.slice(2)).toEqual(["End:f", "End:s"])
          const ends = events.flatMap((event) => (event._tag === "ToolExecutionEnd" ? [event.result.content] : []))
          expect(ends).toEqual(["fast done", "slow done"])
          expect(textOf(events)).toBe("Both done.")
        })
      ))

    it.live("error results end their calls too: an unknown tool and a failing handler", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(
            {
              kind: "reply",
              text: "",
              toolCalls: [{ id: "u", name: "nope", arguments: {} }, { id: "x", name: "flaky", arguments: {} }]
            },
            { kind: "reply", text: "Sorry." }
          )
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(Toolkit.stream([Message.user("go")], Toolkit.make(failing)))
          )
          const ends = events.flatMap((event) => (event._tag === "ToolExecutionEnd" ? [event] : []))
          expect(ends.map((end) => end.toolCall.id).sort()).toEqual(["u", "x"])
          for (const end of ends) expect(end.result.isError).toBe(true)
          expect(ends.find((end) => end.toolCall.id === "u")!.result.content).toContain("unknown tool \"nope\"")
          expect(ends.find((end) => end.toolCall.id === "x")!.result.content).toContain("service unavailable")
          expect(outline(events).filter((tag) => tag.startsWith("Start")).length).toBe(2)
        })
      ))

    it.live("failOnToolError: the stream fails with the ToolExecutionError, after the call's start, with no end", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "", toolCalls: [{ id: "x", name: "flaky", arguments: {} }] })
          const seen: Array<string> = []
          const steps: Array<ReadonlyArray<Message.Message>> = []
          const error = yield* Effect.flip(
            Toolkit.stream([Message.user("go")], Toolkit.make(failing), {
              failOnToolError: true,
              onStep: (added) => Effect.sync(() => steps.push(added))
            }).pipe(Stream.runForEach((event) =>
              Effect.sync(() => {
                for (const line of outline([event])) seen.push(line)
              })
            ))
          )
          expect(error._tag).toBe("ToolExecutionError")
          expect(error._tag === "ToolExecutionError" && error.toolCallId).toBe("x")
          expect(seen).toEqual(["ToolCallStart:x", "ToolCall:x", "Start:x"])
          expect(steps).toEqual([])
          expect(server.requests.length).toBe(1)
        })
      ))

    it.live("barge-in after a non-interruptible call ended: the history holds it, the cancelled call is gone", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const cancelled = yield* Deferred.make<void>()
          const sentEnd = yield* Deferred.make<void>()
          const lookup = Tool.make("lookup", {
            description: "never finishes",
            parameters: Schema.Struct({}),
            handler: () => Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(cancelled, undefined)))
          })
          const send = Tool.make("send_message", {
            description: "sends",
            parameters: Schema.Struct({}),
            interruptible: false,
            handler: () => Effect.succeed("sent")
          })
          server.enqueue({
            kind: "reply",
            text: "On it.",
            toolCalls: [{ id: "a", name: "lookup", arguments: {} }, { id: "b", name: "send_message", arguments: {} }]
          })
          const fiber = yield* conversation.sendStream("Both.", { toolkit: Toolkit.make(lookup, send) }).pipe(
            Stream.tap((event) =>
              event._tag === "ToolExecutionEnd" && event.toolCall.id === "b"
                ? Deferred.succeed(sentEnd, undefined)
                : Effect.void
            ),
            Stream.runDrain,
            Effect.fork
          )
          yield* Deferred.await(sentEnd)
          yield* Fiber.interrupt(fiber)
          expect(yield* Deferred.isDone(cancelled)).toBe(true)
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool"])
          expect(history[1]!.role === "assistant" && history[1]!.toolCalls.map((c) => c.id)).toEqual(["b"])
          expect(history[1]).toMatchObject({ content: "On it.", interrupted: true })
          expect(history[2]).toMatchObject({ toolCallId: "b", content: "sent" })
          expect(server.requests.length).toBe(1)
        })
      ))

    it.live("a consumer that stops at a tool's start leaves no unresolved call", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          const lookup = Tool.make("lookup", {
            description: "never finishes",
            parameters: Schema.Struct({}),
            handler: () => Effect.never
          })
          server.enqueue({ kind: "reply", text: "Looking.", toolCalls: [{ id: "a", name: "lookup", arguments: {} }] })
          const events = Chunk.toReadonlyArray(
            yield* conversation.sendStream("Look.", { toolkit: Toolkit.make(lookup) }).pipe(
              Stream.takeUntil((event) => event._tag === "ToolExecutionStart"),
              Stream.runCollect
            )
          )
          expect(outline(events).at(-1)).toBe("Start:a")
          const history = (yield* conversation.context).messages
          expect(validateRequest(history, {})).toBeUndefined()
          expect(history.map((m) => m.role)).toEqual(["user", "assistant"])
          expect(history[1]).toMatchObject({ content: "Looking.", toolCalls: [], interrupted: true })
        })
      ))

    it.live("Silence: a server slow to answer gets one, before its reply", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          // the reply is held until the consumer has seen the Silence: no race with the clock
          let release!: () => void
          const until = new Promise<void>((resolve) => (release = resolve))
          server.enqueue({ kind: "gated", until, then: { kind: "reply", text: "Here you are." } })
          const events = Chunk.toReadonlyArray(
            yield* conversation.sendStream("Hello?", { silenceAfter: "20 millis" }).pipe(
              Stream.tap((event) => (event._tag === "Silence" ? Effect.sync(release) : Effect.void)),
              Stream.runCollect,
              Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "no Silence came" })
            )
          )
          expect(outline(events)).toEqual(["Silence:1", "Finish"])
          const silence = events[0]!
          expect(silence._tag === "Silence" && silence.waitedMillis).toBeGreaterThanOrEqual(20)
          expect(textOf(events)).toBe("Here you are.")
          expect((yield* conversation.context).history.map((m) => m.content)).toEqual(["Hello?", "Here you are."])
        })
      ))

    it.live("Silence: a server that waits before its first event (firstEventDelayMs) gets one", () =>
      withServer((server) =>
        Effect.gen(function*() {
          // timers fire in order: the 10 ms silence timer starts before the server's 400 ms one
          server.enqueue({ kind: "reply", text: "Sorry for the wait.", firstEventDelayMs: 400 })
          const events = Chunk.toReadonlyArray(
            yield* Stream.runCollect(
              Toolkit.stream([Message.user("Hi")], Toolkit.make(weather), { silenceAfter: "10 millis" })
            )
          )
          expect(outline(events)).toEqual(["Silence:1", "Finish"])
          expect(textOf(events)).toBe("Sorry for the wait.")
          // a whole reply waits too: a 50 ms deadline passes first, on every attempt
          server.setDefault({ kind: "reply", text: "Late.", firstEventDelayMs: 2000 })
          const error = yield* Effect.flip(
            Toolkit.run([Message.user("Hi")], Toolkit.make(weather), { timeout: "50 millis" })
          )
          expect(error._tag).toBe("LlmTimeoutError")
        })
      ))

    it.live("no Silence for a server that answers first, and the timer does not hold the stream open", () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue({ kind: "reply", text: "Quick." })
          const events = Chunk.toReadonlyArray(
            yield* Toolkit.stream([Message.user("Hi")], Toolkit.make(weather), { silenceAfter: "1 minute" }).pipe(
              Stream.runCollect,
              Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the stream waited for the timer" })
            )
          )
          expect(outline(events)).toEqual(["Finish"])
          expect(textOf(events)).toBe("Quick.")
        })
      ))

    it.live("an invalid silenceAfter fails with LlmInvalidRequestError and sends nothing", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(
            Stream.runDrain(Toolkit.stream([Message.user("Hi")], Toolkit.make(weather), { silenceAfter: -5 }))
          )
          expect(error).toBeInstanceOf(LlmInvalidRequestError)
          expect(error.message).toContain("silenceAfter")
          expect(server.requests.length).toBe(0)
        })
      ))
  })
}

describe("tool progress on the TestClock", () => {
  const run = (
    script: ScriptedLlm.Script,
    kit: Toolkit.Toolkit<never>,
    options: Toolkit.RunOptions = {},
    advance: ReadonlyArray<Duration.DurationInput> = ["10 seconds"]
  ) =>
    Effect.gen(function*() {
      const fiber = yield* Toolkit.stream([Message.user("go")], kit, options).pipe(Stream.runCollect, Effect.fork)
      for (const step of advance) yield* TestClock.adjust(step)
      return Chunk.toReadonlyArray(yield* Fiber.join(fiber))
    }).pipe(Effect.provide(ScriptedLlm.layer(script)))

  it.effect("durationMillis is the call's time on Effect's clock", () =>
    Effect.gen(function*() {
      const nap = Tool.make("nap", {
        description: "sleeps",
        parameters: Schema.Struct({ seconds: Schema.Number }),
        handler: ({ seconds }) => Effect.as(Effect.sleep(`${seconds} seconds`), "rested")
      })
      const events = yield* run([
        ScriptedLlm.toolCalls([{ id: "a", name: "nap", arguments: { seconds: 2 } }, {
          id: "b",
          name: "nap",
          arguments: { seconds: 5 }
        }]),
        ScriptedLlm.reply("Rested.")
      ], Toolkit.make(nap))
      const ends = events.flatMap((event) => (event._tag === "ToolExecutionEnd" ? [event] : []))
      expect(ends.map((end) => [end.toolCall.id, end.durationMillis])).toEqual([["a", 2000], ["b", 5000]])
    }))

  it.effect("Silence when the first token takes longer than silenceAfter: once, first, with the time waited", () =>
    Effect.gen(function*() {
      const events = yield* run(
        [ScriptedLlm.reply("Thought about it.", { firstTokenDelay: "3 seconds", delay: "2 seconds" })],
        Toolkit.make(weather),
        { silenceAfter: "1 second" }
      )
      expect(events[0]).toEqual(StreamEvent.Silence({ step: 1, waitedMillis: 1000 }))
      expect(outline(events)).toEqual(["Silence:1", "Finish"])
      expect(textOf(events)).toBe("Thought about it.")
    }))

  it.effect("no Silence when the first token comes in time, however long the rest takes", () =>
    Effect.gen(function*() {
      const events = yield* run(
        [ScriptedLlm.reply("One two three.", { firstTokenDelay: "900 millis", delay: "5 seconds" })],
        Toolkit.make(weather),
        { silenceAfter: "1 second" },
        ["30 seconds"]
      )
      expect(outline(events)).toEqual(["Finish"])
      expect(textOf(events)).toBe("One two three.")
    }))

  it.effect("no Silence for a step that ends without content before silenceAfter", () =>
    Effect.gen(function*() {
      const events = yield* run([ScriptedLlm.reply("")], Toolkit.make(weather), { silenceAfter: "1 second" })
      expect(outline(events)).toEqual(["Finish"])
    }))

  it.effect("no Silence without silenceAfter", () =>
    Effect.gen(function*() {
      const events = yield* run(
        [ScriptedLlm.reply("Late.", { firstTokenDelay: "1 minute" })],
        Toolkit.make(weather),
        {},
        ["2 minutes"]
      )
      expect(outline(events)).toEqual(["Finish"])
    }))

  it.effect("Silence on the step after the tools, timed from that step's start", () =>
    Effect.gen(function*() {
      const nap = Tool.make("nap", {
        description: "sleeps",
        parameters: Schema.Struct({}),
        handler: () => Effect.as(Effect.sleep("5 seconds"), "rested")
      })
      const events = yield* run(
        [
          ScriptedLlm.toolCalls([{ id: "a", name: "nap", arguments: {} }], { text: "Let me see." }),
          ScriptedLlm.reply("Found it.", { firstTokenDelay: "3 seconds" })
        ],
        Toolkit.make(nap),
        { silenceAfter: "2 seconds" },
        ["30 seconds"]
      )
      expect(outline(events)).toEqual(["ToolCallStart:a", "ToolCall:a", "Start:a", "End:a", "Silence:2", "Finish"])
      expect(events.find((event) => event._tag === "Silence")).toEqual(
        StreamEvent.Silence({ step: 2, waitedMillis: 2000 })
      )
      expect(textOf(events)).toBe("Let me see.Found it.")
    }))

  it.scoped("a Silence is not content: a step refused as too long after it is still pruned and sent again", () =>
    Effect.gen(function*() {
      let context = ConversationContext.make({ maxTurns: 10 })
      for (const n of [1, 2, 3, 4]) context = context.addUser(`q${n}`).addAssistant({ content: `a${n}` })
      const conversation = yield* Conversation.make(context)
      const fiber = yield* conversation.sendStream("q5", { silenceAfter: "1 second" }).pipe(
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("10 seconds")
      const events = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(outline(events)).toEqual(["Silence:1", "Finish"])
      expect(textOf(events)).toBe("ok")
      const calls = yield* ScriptedLlm.calls
      expect(calls.length).toBe(2)
      expect(calls[1]!.messages.length).toBeLessThan(calls[0]!.messages.length)
    }).pipe(Effect.provide(ScriptedLlm.layer([
      ScriptedLlm.fail(
        new LlmInvalidRequestError({
          provider: "scripted",
          model: "scripted-model",
          message: "too long",
          reason: "contextOverflow"
        }),
        { delay: "2 seconds" }
      ),
      ScriptedLlm.reply("ok")
    ]))))
})

describe("the progress events elsewhere", () => {
  const loopEvents = [
    StreamEvent.TextDelta({ text: "Let me check" }),
    StreamEvent.ToolExecutionStart({ toolCall: new Message.ToolCall({ id: "a", name: "t", arguments: {} }) }),
    StreamEvent.Silence({ step: 2, waitedMillis: 1000 }),
    StreamEvent.TextDelta({ text: "It is done." })
  ]

  it.effect("sentences ends the pending text at a ToolExecutionStart", () =>
    Effect.gen(function*() {
      const chunks = yield* Stream.runCollect(LlmStream.sentences(Stream.fromIterable(loopEvents)))
      expect(Chunk.toReadonlyArray(chunks)).toEqual(["Let me check", "It is done."])
    }))

  it.effect("collect ignores them", () =>
    Effect.gen(function*() {
      const finish = StreamEvent.Finish({
        finishReason: "stop",
        usage: Usage.empty,
        model: "m",
        metadata: new ResponseMetadata({ provider: "p", attempts: 1, latencyMillis: 0 })
      })
      const plain = loopEvents.filter((event) => event._tag === "TextDelta")
      const withEvents = yield* LlmStream.collect(Stream.fromIterable([...loopEvents, finish]))
      expect(withEvents).toEqual(yield* LlmStream.collect(Stream.fromIterable([...plain, finish])))
      expect(withEvents.content).toBe("Let me checkIt is done.")
    }))
})
