/**
 * A custom provider: any `Layer<Llm>` can be a backend. Here a tiny rule-based
 * "model" is registered under a name and picked from configuration, the way
 * the seed's `register_provider` worked, without global state.
 * Run: npx tsx examples/custom_provider.ts
 */
import { Chunk, Console, Effect, Layer, Stream } from "effect"
import { Llm, LlmConfig, LlmStream, Message, StreamEvent, Usage } from "../src/index.js"

/** A backend that answers by rule: the whole `Llm` service in a few lines. */
const echoBackend: LlmConfig.BackendFactory = ({ name, section }) => {
  const model = String(section.model ?? "echo-1")
  const reply = (messages: ReadonlyArray<Message.Message>) =>
    `${String(section.prefix ?? "You said")}: ${messages[messages.length - 1]?.content ?? ""}`
  const stream = (messages: ReadonlyArray<Message.Message>) =>
    Stream.fromIterable<StreamEvent>([
      ...reply(messages).split(/(?<= )/).map((text) => StreamEvent.TextDelta({ text })),
      StreamEvent.Finish({
        finishReason: "stop",
        usage: Usage.empty,
        model,
        metadata: new Llm.ResponseMetadata({ provider: name, attempts: 1, latencyMillis: 0 })
      })
    ])
  return Layer.succeed(Llm.Llm, {
    provider: name,
    model,
    stream,
    complete: (messages) => LlmStream.collect(stream(messages)).pipe(Effect.orDie)
  })
}

const config = { llm: { backend: "echo", echo: { model: "echo-1", prefix: "Echo" } } }

const program = Effect.gen(function*() {
  const result = yield* Llm.complete([Message.user("hello, custom backend")])
  yield* Console.log(`${result.metadata.provider} answered: ${result.content}`)
  const streamed = yield* Stream.runCollect(Llm.streamText([Message.user("streams work too")]))
  yield* Console.log(`streamed in ${Chunk.size(streamed)} pieces: ${Chunk.join(streamed, "")}`)
})

program.pipe(
  Effect.provide(
    LlmConfig.layerFrom(config, { registry: new Map([["echo", echoBackend]]) })
  ),
  Effect.runPromise
)
