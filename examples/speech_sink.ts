/**
 * Streaming into a speech sink: sentences go to the synthesiser as soon as
 * each is complete, so speaking starts before the reply is finished. The user
 * barges in after two sentences: the request is aborted at once.
 * Run: npx tsx examples/speech_sink.ts
 */
import { Console, Effect, Stream } from "effect"
import { Llm, LlmStream, Message } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

/** A stand-in for a TTS engine: "speaks" a sentence, taking time per word. */
const speak = (sentence: string) =>
  Effect.zipRight(Console.log(`🔊 ${sentence}`), Effect.sleep(`${10 * sentence.split(" ").length} millis`))

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const started = Date.now()
  let first: number | undefined
  const spoken = yield* Llm.stream([Message.user("Describe the solar system in a few sentences.")]).pipe(
    LlmStream.sentences,
    Stream.tap(() => Effect.sync(() => (first ??= Date.now() - started))),
    Stream.take(2), // the user interrupts after two sentences
    Stream.runForEach(speak),
    Effect.as(2)
  )
  yield* Console.log(
    `Spoke ${spoken} sentences; first sentence ready after ${first} ms; the rest of the reply was cancelled.`
  )
})

program.pipe(
  Effect.provide(exampleLlm([{
    kind: "reply",
    text:
      "The solar system has eight planets. Mercury is closest to the Sun. Jupiter is the largest. Neptune is the farthest. Pluto is a dwarf planet.",
    chunkSize: 7,
    delayMs: 20
  }])),
  Effect.runPromise
)
