/**
 * The orchestrator as an Effect service composed from layers: a
 * conversation, a toolkit, and a speech sink. Each user turn streams the
 * reply sentence by sentence into the sink and runs tools between steps.
 * Run: npx tsx examples/orchestrator.ts
 */
import { Console, Effect, Layer, Stream } from "effect"
import { Conversation, LlmStream, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"
import { ConsoleSpeech, Orchestrator, setTimer, SpeechSink } from "./support/kitchen.js"

const OrchestratorLive = Layer.effect(
  Orchestrator,
  Effect.gen(function*() {
    const conversation = yield* Conversation.Conversation
    const speech = yield* SpeechSink
    const toolkit = Toolkit.make(setTimer)
    return {
      handle: (userText) =>
        Effect.gen(function*() {
          yield* Console.log(`User: ${userText}`)
          yield* conversation.sendStream(userText, { toolkit }).pipe(
            LlmStream.sentences,
            Stream.runForEach(speech.speak)
          )
        })
    }
  })
)

const AppLive = OrchestratorLive.pipe(
  Layer.provideMerge(Conversation.layer({ systemMessage: "You are a kitchen voice assistant." })),
  Layer.provide(ConsoleSpeech),
  Layer.provide(exampleLlm([
    { kind: "reply", text: "Sure. ", toolCalls: [{ id: "t1", name: "set_timer", arguments: { minutes: 10 } }] },
    {
      kind: "reply",
      text: "Your timer is set for ten minutes. I'll let you know when it rings.",
      chunkSize: 5,
      delayMs: 10
    },
    { kind: "reply", text: "You asked for ten minutes.", chunkSize: 5 }
  ]))
)

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const orchestrator = yield* Orchestrator
  yield* orchestrator.handle("Set a timer for ten minutes.")
  yield* orchestrator.handle("How long was that timer?")
  const context = yield* (yield* Conversation.Conversation).context
  yield* Console.log(`History: ${context.messages.map((m) => m.role).join(" > ")}`)
})

program.pipe(Effect.provide(AppLive), Effect.runPromise)
