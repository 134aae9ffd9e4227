/**
 * `effect-llm/testing`'s scripted `Llm`: what applications test themselves
 * with. Its replies, pacing, tool calls, faults and the record of calls.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { LlmRateLimitError } from "../src/errors.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"

const hi = [Message.user("Hi")]
const rateLimited = new LlmRateLimitError({ provider: "scripted", model: "m", message: "slow down" })

describe("ScriptedLlm", () => {
  it.effect("answers calls with its steps in order and records each call", () =>
    Effect.gen(function*() {
      const first = yield* Llm.complete(hi, { temperature: 0.2 })
      const second = yield* Llm.streamText([Message.user("More")]).pipe(Stream.runCollect)
      const calls = yield* ScriptedLlm.calls
      expect(first.content).toBe("Hello there!")
      expect(first.finishReason).toBe("stop")
      expect(first.metadata.provider).toBe("scripted")
      expect(Chunk.toReadonlyArray(second)).toEqual(["Once ", "upon ", "a ", "time."])
      expect(calls.map((call) => [call.kind, call.outcome, (call.messages[0] as Message.UserMessage).content])).toEqual(
        [
          ["complete", "completed", "Hi"],
          ["stream", "completed", "More"]
        ]
      )
      expect(calls[0]!.options?.temperature).toBe(0.2)
    }).pipe(
      Effect.provide(ScriptedLlm.layer([ScriptedLlm.reply("Hello there!"), ScriptedLlm.reply("Once upon a time.")]))
    ))

  it.effect("streams the deltas it is given, reasoning first", () =>
    Effect.gen(function*() {
      const events = yield* Llm.stream(hi).pipe(Stream.runCollect)
      expect(
        Chunk.toReadonlyArray(events).map((event) =>
          event._tag === "Finish" ? "end" : `${event._tag}:${"text" in event ? event.text : ""}`
        )
      )
        .toEqual(["ReasoningDelta:thinking", "TextDelta:Hel", "TextDelta:lo", "end"])
    }).pipe(
      Effect.provide(ScriptedLlm.layer([ScriptedLlm.reply("Hello", { deltas: ["Hel", "lo"], reasoning: "thinking" })]))
    ))

  it.effect("a call past the last step is a defect that names it", () =>
    Effect.gen(function*() {
      yield* Llm.complete(hi)
      const exit = yield* Effect.exit(Llm.complete(hi))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("ScriptedLlm: call 2 has no step (the script has 1)")
    }).pipe(Effect.provide(ScriptedLlm.layer([ScriptedLlm.reply("once")]))))

  it.effect("a function of the call picks the step", () =>
    Effect.gen(function*() {
      const a = yield* Llm.complete([Message.user("ping")])
      const b = yield* Llm.complete([Message.user("anything")])
      expect([a.content, b.content]).toEqual(["pong", "call 1"])
    }).pipe(Effect.provide(ScriptedLlm.layer((call, index) =>
      (call.messages[0] as Message.UserMessage).content === "ping"
        ? ScriptedLlm.reply("pong")
        : ScriptedLlm.reply(`call ${index}`)
    ))))

  it.effect("paces a stream on Effect's clock: first token, then a delay between events", () =>
    Effect.gen(function*() {
      const fiber = yield* Llm.stream(hi).pipe(Stream.runCollect, Effect.fork)
      yield* TestClock.adjust("299 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust("100 millis")
      const events = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      const finish = events.at(-1)!
      expect(finish._tag === "Finish" && [finish.metadata.firstTokenMillis, finish.metadata.latencyMillis]).toEqual([
        300,
        400
      ])
    }).pipe(
      Effect.provide(
        ScriptedLlm.layer([ScriptedLlm.reply("a b", { firstTokenDelay: "300 millis", delay: "100 millis" })])
      )
    ))

  it.effect("drives the tool loop: tool calls, then the answer, with the results sent back", () =>
    Effect.gen(function*() {
      const weather = Tool.make("get_weather", {
        description: "Weather in a city",
        parameters: Schema.Struct({ city: Schema.String }),
        handler: ({ city }) => Effect.succeed({ city, sky: "rain" })
      })
      const { result, steps } = yield* Toolkit.run(hi, Toolkit.make(weather))
      const calls = yield* ScriptedLlm.calls
      expect([result.content, steps]).toEqual(["Rain in Oslo.", 2])
      const sent = calls[1]!.messages.map((message) => message.role)
      expect(sent).toEqual(["user", "assistant", "tool"])
      expect((calls[1]!.messages[2] as Message.ToolMessage).toolCallId).toBe("w1")
      expect(calls[1]!.options?.tools?.map((tool) => tool.name)).toEqual(["get_weather"])
    }).pipe(Effect.provide(ScriptedLlm.layer([
      ScriptedLlm.toolCalls([{ id: "w1", name: "get_weather", arguments: { city: "Oslo" } }]),
      ScriptedLlm.reply("Rain in Oslo.")
    ]))))

  it.effect("a streamed tool call arrives as start, arguments and the parsed call", () =>
    Effect.gen(function*() {
      const result = yield* LlmStream.collect(Llm.stream(hi))
      expect(result.finishReason).toBe("tool_calls")
      expect(result.toolCalls.map((call) => [call.id, call.name, call.arguments])).toEqual([["call_0", "search", {
        q: "x"
      }]])
    }).pipe(Effect.provide(ScriptedLlm.layer([ScriptedLlm.toolCalls([{ name: "search", arguments: { q: "x" } }])]))))

  it.effect("a failure mid-stream delivers the text before it, then fails with it as partialText", () =>
    Effect.gen(function*() {
      const texts: Array<string> = []
      const error = yield* Llm.streamText(hi).pipe(
        Stream.runForEach((text) => Effect.sync(() => texts.push(text))),
        Effect.flip
      )
      expect(texts).toEqual(["Half ", "a "])
      expect(error._tag).toBe("LlmRateLimitError")
      expect(error.partialText).toBe("Half a ")
      expect(error.message).toBe("slow down")
      const failed = yield* Effect.flip(Llm.complete(hi))
      expect([failed._tag, failed.partialText]).toEqual(["LlmRateLimitError", undefined])
      expect((yield* ScriptedLlm.calls).map((call) => call.outcome)).toEqual(["failed", "failed"])
    }).pipe(Effect.provide(ScriptedLlm.layer([
      ScriptedLlm.fail(rateLimited, { afterText: "Half a " }),
      ScriptedLlm.fail(rateLimited)
    ]))))

  it.effect("records a call the caller cut off as interrupted: a timeout, and a consumer that stops early", () =>
    Effect.gen(function*() {
      const timedOut = yield* Llm.complete(hi).pipe(Effect.timeout("1 second"), Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(Exit.isFailure(yield* Fiber.await(timedOut))).toBe(true)
      const first = yield* Llm.streamText(hi).pipe(Stream.take(1), Stream.runCollect)
      expect(Chunk.toReadonlyArray(first)).toEqual(["one "])
      expect((yield* ScriptedLlm.calls).map((call) => call.outcome)).toEqual(["interrupted", "interrupted"])
    }).pipe(Effect.provide(ScriptedLlm.layer([ScriptedLlm.hang, ScriptedLlm.reply("one two three")]))))
})
