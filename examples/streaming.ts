/**
 * Streaming: print the reply as it is produced.
 * Run: npx tsx examples/streaming.ts
 */
import { Console, Effect, Stream } from "effect"
import { Llm, Message } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  let chunks = 0
  yield* Llm.streamText([Message.user("Tell me a very short story about a lighthouse.")]).pipe(
    Stream.runForEach((text) => Effect.sync(() => (chunks++, process.stdout.write(text))))
  )
  yield* Console.log(`\n(${chunks} chunks)`)
})

program.pipe(
  Effect.provide(exampleLlm([{
    kind: "reply",
    text: "The lighthouse keeper lit the lamp each night. One stormy evening, a small boat followed its beam home.",
    chunkSize: 6,
    delayMs: 15
  }])),
  Effect.runPromise
)
