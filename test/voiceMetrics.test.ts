/**
 * A spoken turn's voice metrics: time to first token, first chunk and first
 * audio, output tokens and interruption, in the result's metadata, through
 * `onMetrics` and as Effect metrics. Exact values on the `TestClock` with the
 * scripted `Llm`; over loopback to the fake provider for both wire protocols.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Conversation from "../src/Conversation.js"
import * as VoiceMetrics from "../src/internal/voiceMetrics.js"
import type * as Llm from "../src/Llm.js"
import { Usage } from "../src/Reply.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const usage = (outputTokens: number) => new Usage({ inputTokens: 5, outputTokens, totalTokens: 5 + outputTokens })

/** The counter of spoken turns with `interrupted` so, as it stands. */
const turnsCounted = (interrupted: boolean) =>
  Effect.map(
    Metric.value(Metric.tagged(VoiceMetrics.turns, "interrupted", String(interrupted))),
    (state) => state.count
  )

describe("Conversation.speak: onEvent", () => {
  it.effect("sees the progress events in order with the chunks: filler for a tool and for a silence is played, not recorded", () => {
    const lookup = Tool.make("lookup", {
      description: "looks it up",
      parameters: Schema.Struct({}),
      handler: () => Effect.as(Effect.sleep("1 second"), "sunny")
    })
    return Effect.gen(function*() {
      const conversation = yield* Conversation.Conversation
      const heard: Array<string> = []
      const fiber = yield* Effect.fork(conversation.speak("Weather?", {
        toolkit: Toolkit.make(lookup),
        silenceAfter: "1 second",
        sink: (chunk) => Effect.sync(() => heard.push(chunk)),
        onEvent: (event) =>
          Effect.sync(() => {
            if (event._tag === "ToolExecutionStart") heard.push(`(filler) checking ${event.toolCall.name}`)
            else if (event._tag === "ToolExecutionEnd") heard.push(`(done in ${event.durationMillis} ms)`)
            else if (event._tag === "Silence") heard.push(`(filler) hmm, step ${event.step}`)
          })
      }))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(heard).toEqual([
        "(filler) hmm, step 1",
        "Let me check.",
        "(filler) checking lookup",
        "(done in 1000 ms)",
        "(filler) hmm, step 2",
        "It is sunny."
      ])
      const context = yield* conversation.context
      expect(context.messages.map((message) => message.content)).toEqual([
        "Weather?",
        "Let me check.",
        "sunny",
        "It is sunny."
      ])
    }).pipe(
      Effect.provide(Layer.provideMerge(
        Conversation.layer(),
        ScriptedLlm.layer([
          ScriptedLlm.toolCalls([{ id: "a", name: "lookup", arguments: {} }], {
            text: "Let me check.",
            firstTokenDelay: "2 seconds"
          }),
          ScriptedLlm.reply("It is sunny.", { firstTokenDelay: "2 seconds" })
        ])
      ))
    )
  })
})

describe("voice metrics on the TestClock", () => {
  const withConversation = <A, E>(
    script: ScriptedLlm.Script,
    f: (conversation: Conversation.Conversation.Service) => Effect.Effect<A, E>
  ) =>
    Effect.gen(function*() {
      const conversation = yield* Conversation.Conversation
      return yield* f(conversation)
    }).pipe(Effect.provide(Layer.provideMerge(Conversation.layer(), ScriptedLlm.layer(script))))

  it.effect("a completed turn: the times from its start, its tokens, in the metadata, onMetrics and the metrics", () =>
    withConversation([
      ScriptedLlm.reply("Hello there. How are you today?", {
        deltas: ["Hello ", "there. ", "How ", "are you today?"],
        firstTokenDelay: "300 millis",
        delay: "20 millis",
        usage: usage(9)
      })
    ], (conversation) =>
      Effect.gen(function*() {
        const before = {
          token: yield* Metric.value(VoiceMetrics.timeToFirstToken),
          chunk: yield* Metric.value(VoiceMetrics.timeToFirstChunk),
          audio: yield* Metric.value(VoiceMetrics.timeToFirstAudio),
          tokens: (yield* Metric.value(VoiceMetrics.outputTokens)).count,
          completed: yield* turnsCounted(false)
        }
        const reported: Array<Conversation.TurnMetrics> = []
        const played: Array<string> = []
        const fiber = yield* Effect.fork(conversation.speak("Hi.", {
          // the audio starts 50 ms after a chunk arrives, and plays for 200 ms
          sink: (chunk, _progress, started) =>
            Effect.sleep("50 millis").pipe(
              Effect.zipRight(started),
              Effect.zipRight(Effect.sleep("200 millis")),
              Effect.zipRight(Effect.sync(() => played.push(chunk)))
            ),
          onMetrics: (metrics) => Effect.sync(() => reported.push(metrics))
        }))
        yield* TestClock.adjust("10 seconds")
        const result = yield* Fiber.join(fiber)
        expect(played).toEqual(["Hello there.", "How are you today?"])
        // the first text at 300 ms; the first chunk once "How " proved its end (340 ms); its audio 50 ms later
        const expected = {
          firstTokenMillis: 300,
          firstChunkMillis: 340,
          firstAudioMillis: 390,
          outputTokens: 9,
          interrupted: false
        }
        expect(result.metadata.voice).toEqual(expected)
        expect(reported).toEqual([expected])
        const token = yield* Metric.value(VoiceMetrics.timeToFirstToken)
        expect([token.count - before.token.count, token.sum - before.token.sum]).toEqual([1, 300])
        const chunk = yield* Metric.value(VoiceMetrics.timeToFirstChunk)
        expect([chunk.count - before.chunk.count, chunk.sum - before.chunk.sum]).toEqual([1, 340])
        const audio = yield* Metric.value(VoiceMetrics.timeToFirstAudio)
        expect([audio.count - before.audio.count, audio.sum - before.audio.sum]).toEqual([1, 390])
        expect((yield* Metric.value(VoiceMetrics.outputTokens)).count - before.tokens).toBe(9)
        expect((yield* turnsCounted(false)) - before.completed).toBe(1)
      })))

  it.effect("a tool step: tokens summed over both model calls; progress events are not spoken", () => {
    const lookup = Tool.make("lookup", {
      description: "looks it up",
      parameters: Schema.Struct({}),
      handler: () => Effect.as(Effect.sleep("1 second"), "sunny")
    })
    return withConversation([
      ScriptedLlm.toolCalls([{ id: "a", name: "lookup", arguments: {} }], {
        text: "Let me check.",
        firstTokenDelay: "2 seconds",
        usage: usage(4)
      }),
      ScriptedLlm.reply("It is sunny.", { firstTokenDelay: "2 seconds", usage: usage(6) })
    ], (conversation) =>
      Effect.gen(function*() {
        const played: Array<string> = []
        const fiber = yield* Effect.fork(conversation.speak("Weather?", {
          toolkit: Toolkit.make(lookup),
          silenceAfter: "1 second",
          sink: (chunk) => Effect.sync(() => played.push(chunk))
        }))
        yield* TestClock.adjust("1 minute")
        const result = yield* Fiber.join(fiber)
        expect(played).toEqual(["Let me check.", "It is sunny."])
        // without onEvent: nothing but the reply is spoken
        expect(result.content).toBe("It is sunny.")
        expect(result.metadata.voice).toEqual({
          firstTokenMillis: 2000,
          firstChunkMillis: 2000,
          outputTokens: 10,
          interrupted: false
        })
      }))
  })
})

for (const backend of backends.filter((b) => b.name === "local" || b.name === "anthropic")) {
  describe(`voice metrics: ${backend.name}`, () => {
    const withServer = <A, E>(
      f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm | Conversation.Conversation>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* FakeProvider.make
        return yield* f(server).pipe(
          Effect.provide(Layer.provideMerge(Conversation.layer({ maxTurns: 10 }), backend.layer(server.url)))
        )
      }))

    const reply = "One is first. Two is second. Three is third."

    it.live("first audio only when the sink reports it; the first chunk never before the first token", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue(
            { kind: "reply", text: reply, chunkSize: 5, usage: { inputTokens: 3, outputTokens: 12 } },
            { kind: "reply", text: reply, chunkSize: 5, usage: { inputTokens: 3, outputTokens: 12 } }
          )
          const silent = (yield* conversation.speak("Count.", { sink: () => Effect.void })).metadata.voice!
          expect(silent.firstAudioMillis).toBeUndefined()
          expect(silent.firstChunkMillis!).toBeGreaterThanOrEqual(silent.firstTokenMillis!)
          expect(silent).toMatchObject({ outputTokens: 12, interrupted: false })
          const heard = (yield* conversation.speak("Again.", {
            sink: (_chunk, _progress, started) => Effect.zipRight(Effect.sleep("2 millis"), started)
          })).metadata.voice!
          expect(heard.firstAudioMillis!).toBeGreaterThanOrEqual(heard.firstChunkMillis!)
          expect(heard.firstChunkMillis!).toBeGreaterThanOrEqual(heard.firstTokenMillis!)
        })
      ))

    it.live("tokens are summed over a tool step and the answer after it", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue(
            {
              kind: "reply",
              text: "Let me look.",
              toolCalls: [{ id: "a", name: "lookup", arguments: {} }],
              usage: { inputTokens: 10, outputTokens: 7 }
            },
            { kind: "reply", text: "Found it.", usage: { inputTokens: 20, outputTokens: 11 } }
          )
          const lookup = Tool.make("lookup", {
            description: "looks it up",
            parameters: Schema.Struct({}),
            handler: () => Effect.succeed("found")
          })
          const result = yield* conversation.speak("Look.", { sink: () => Effect.void, toolkit: Toolkit.make(lookup) })
          expect(result.usage.outputTokens).toBe(11) // the last step's, as send returns
          expect(result.metadata.voice).toMatchObject({ outputTokens: 18, interrupted: false })
        })
      ))

    it.live("an interrupted turn reports interrupted: true through onMetrics and the turns counter", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply, chunkSize: 5 })
          const before = { interrupted: yield* turnsCounted(true), completed: yield* turnsCounted(false) }
          const reported: Array<Conversation.TurnMetrics> = []
          const second = yield* Deferred.make<void>()
          let n = 0
          const fiber = yield* Effect.fork(conversation.speak("Count.", {
            sink: (_chunk, _progress, started) =>
              ++n < 2 ? started : Effect.zipRight(Deferred.succeed(second, undefined), Effect.never),
            onMetrics: (metrics) => Effect.sync(() => reported.push(metrics))
          }))
          yield* Deferred.await(second)
          yield* Fiber.interrupt(fiber)
          expect(reported.length).toBe(1)
          expect(reported[0]).toMatchObject({ interrupted: true })
          expect(reported[0]!.firstAudioMillis).toBeDefined()
          expect((yield* turnsCounted(true)) - before.interrupted).toBe(1)
          expect((yield* turnsCounted(false)) - before.completed).toBe(0)
          // the history keeps what was heard, as before
          const history = (yield* conversation.context).history
          expect(history[1]).toMatchObject({ content: "One is first.", interrupted: true })
        })
      ))

    it.live("a failed turn still reports its metrics, not interrupted", () =>
      withServer((server) =>
        Effect.gen(function*() {
          const conversation = yield* Conversation.Conversation
          server.enqueue({ kind: "reply", text: reply })
          const reported: Array<Conversation.TurnMetrics> = []
          const error = yield* Effect.flip(conversation.speak("Count.", {
            sink: () => Effect.fail("speaker gone" as const),
            onMetrics: (metrics) => Effect.sync(() => reported.push(metrics))
          }))
          expect(error).toBe("speaker gone")
          expect(reported.length).toBe(1)
          expect(reported[0]).toMatchObject({ interrupted: false })
          expect(reported[0]!.firstChunkMillis).toBeDefined()
          expect(reported[0]!.firstAudioMillis).toBeUndefined()
        })
      ))
  })
}
