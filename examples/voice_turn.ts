/**
 * Filling the pauses of a voice turn, and measuring it. The first turn
 * streams with `sendStream`: when the model asks for a tool, the assistant
 * says "Let me check that." while the tool runs (`ToolExecutionStart`), and
 * when the answer is slow to start it says "Hmm, one moment." (`Silence`,
 * after `silenceAfter`). The second turn is spoken with `speak`: the sink
 * reports when each chunk's audio starts, and `onMetrics` prints the turn's
 * time to first token, first chunk and first audio.
 * Run: npx tsx examples/voice_turn.ts
 */
import { Console, Effect, Layer, Schema, Stream } from "effect"
import { Conversation, LlmStream, Tool, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const getWeather = Tool.make("get_weather", {
  description: "Current weather for a city",
  parameters: Schema.Struct({ city: Schema.String }),
  // a slow weather service: the filler covers the wait
  handler: ({ city }) => Effect.as(Effect.sleep("300 millis"), { city, temperature: 4, conditions: "rain" })
})

/** A stand-in for a TTS engine: audio starts after 20 ms, then takes time per word. */
const sink: Conversation.SpeechSink = (chunk, _progress, started) =>
  Effect.gen(function*() {
    yield* Effect.sleep("20 millis") // synthesising the first audio
    yield* started
    yield* Console.log(`🔊 ${chunk}`)
    yield* Effect.sleep(`${10 * chunk.split(" ").length} millis`)
  })

const say = (text: string) => Console.log(`🔊 ${text}`)

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const conversation = yield* Conversation.Conversation
  const toolkit = Toolkit.make(getWeather)

  // a streamed turn: filler from the progress events, the reply in sentences
  yield* conversation.sendStream("What's the weather in Oslo?", { toolkit, silenceAfter: "500 millis" }).pipe(
    Stream.tap((event) => {
      switch (event._tag) {
        case "ToolExecutionStart":
          return say("Let me check that.")
        case "ToolExecutionEnd":
          return Console.log(`(${event.toolCall.name} answered in ${event.durationMillis} ms)`)
        case "Silence":
          return say("Hmm, one moment.")
        default:
          return Effect.void
      }
    }),
    LlmStream.sentences,
    Stream.runForEach(say)
  )

  // a spoken turn, measured
  yield* conversation.speak("Do I need an umbrella?", {
    sink,
    onMetrics: (metrics) =>
      Console.log(
        `first token ${metrics.firstTokenMillis} ms, first chunk ${metrics.firstChunkMillis} ms, ` +
          `first audio ${metrics.firstAudioMillis} ms, ${metrics.outputTokens} output tokens, ` +
          `interrupted: ${metrics.interrupted}`
      )
  })
})

program.pipe(
  Effect.provide(
    Conversation.layer({ systemMessage: "You are a voice assistant. Answer briefly." }).pipe(
      Layer.provideMerge(exampleLlm([
        { kind: "reply", toolCalls: [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }] },
        // the model takes its time to start the answer: a Silence comes first
        { kind: "reply", text: "It is 4 degrees and raining in Oslo.", firstEventDelayMs: 1200, chunkSize: 6 },
        { kind: "reply", text: "Yes, take an umbrella. And a warm coat.", chunkSize: 5, delayMs: 10 }
      ]))
    )
  ),
  Effect.runPromise
)
