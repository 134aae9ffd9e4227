/**
 * A custom provider, written with the provider kit: an "echo" service that
 * speaks Chat Completions is declared once (name, codec, defaults, headers
 * from its options) and gets `make`, `layer` and `layerConfig`. It is then
 * registered under a name and picked from configuration, without global state.
 * The echo service itself is the project's fake provider on loopback,
 * answering each request with its last message.
 * Run: npx tsx examples/custom_provider.ts
 */
import { Chunk, Console, Effect, Stream } from "effect"
import { ChatCompletions, Llm, LlmConfig, Message, Provider } from "../src/index.js"
import { fakeProvider } from "./support/backend.js"

/** The echo provider's own option: the prefix it answers with, sent as a header. */
interface EchoOptions extends Provider.ProviderOptions {
  readonly prefix?: string | undefined
}

/** The whole provider: what differs from any other Chat Completions backend. */
const Echo = Provider.make<EchoOptions>({
  name: "echo",
  defaults: { model: "echo-1", baseUrl: "http://127.0.0.1:8080/v1", timeout: "10 seconds", apiKeyEnv: "ECHO_API_KEY" },
  apiKeyRequired: false,
  codec: ChatCompletions.make({ maxTokensField: "max_tokens" }),
  optionHeaders: { prefix: "x-echo-prefix" }
})

const program = Effect.gen(function*() {
  const result = yield* Llm.complete([Message.user("hello, custom backend")])
  yield* Console.log(`${result.metadata.provider} answered: ${result.content}`)
  const streamed = yield* Stream.runCollect(Llm.streamText([Message.user("streams work too")]))
  yield* Console.log(`streamed in ${Chunk.size(streamed)} pieces: ${Chunk.join(streamed, "")}`)
})

Effect.gen(function*() {
  // the echo service: the last message back, after the prefix its header asks for
  const server = yield* fakeProvider
  server.respond((request) => {
    const messages = (request.body as { messages: ReadonlyArray<{ content: string }> }).messages
    const prefix = String(request.headers["x-echo-prefix"] ?? "You said")
    return { kind: "reply", text: `${prefix}: ${messages[messages.length - 1]!.content}`, chunkSize: 6 }
  })
  const config = { llm: { backend: "echo", echo: { model: "echo-1", prefix: "Echo" } } }
  const echoBackend: LlmConfig.BackendFactory = ({ apiKey, retry, section }) =>
    Echo.layer({
      baseUrl: `${server.url}/v1`,
      model: String(section.model ?? Echo.defaults.model),
      prefix: typeof section.prefix === "string" ? section.prefix : undefined,
      apiKey: apiKey._tag === "Some" ? apiKey.value : undefined,
      retry
    })
  yield* program.pipe(Effect.provide(LlmConfig.layerFrom(config, { registry: new Map([["echo", echoBackend]]) })))
}).pipe(Effect.scoped, Effect.runPromise)
