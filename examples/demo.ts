/**
 * The voice-assistant flow end to end, with no keys and no network:
 * - the local model server is down (nothing listens on its port);
 * - the assistant falls back to a cloud backend (Anthropic's wire format,
 *   served by the project's fake provider on loopback);
 * - a multi-turn conversation with a tool call, its reply streamed sentence
 *   by sentence as it arrives, and one summary line per turn.
 * Run: npm run demo
 */
import { Console, Effect, Layer, Logger, LogLevel, Redacted, Schema, Stream } from "effect"
import { Anthropic, Conversation, Fallback, Local, type StreamEvent, Tool, Toolkit } from "../src/index.js"
import { fakeProvider } from "./support/backend.js"

const getWeather = Tool.make("get_weather", {
  description: "Current weather for a city",
  parameters: Schema.Struct({ city: Schema.String }),
  handler: ({ city }) => Effect.succeed({ city, temperature: 12, conditions: "light rain" })
})

const turns = [
  "Hi! My name is Sam.",
  "What's the weather like in Lisbon right now?",
  "Thanks. Do you remember my name?"
]

const program = Effect.gen(function*() {
  const cloud = yield* fakeProvider
  cloud.enqueue(
    { kind: "reply", text: "Hello Sam! How can I help you today?", chunkSize: 4, delayMs: 8 },
    {
      kind: "reply",
      text: "Let me check. ",
      toolCalls: [{ id: "toolu_1", name: "get_weather", arguments: { city: "Lisbon" } }],
      chunkSize: 4,
      delayMs: 8
    },
    { kind: "reply", text: "It's 12°C with light rain in Lisbon. Take an umbrella!", chunkSize: 4, delayMs: 8 },
    { kind: "reply", text: "Of course, your name is Sam.", chunkSize: 4, delayMs: 8 }
  )
  yield* Console.log(
    "effect-llm demo: local gpt-oss at http://127.0.0.1:9 (down) -> Anthropic-format backend at " + cloud.url +
      " (fake provider, no network)\n"
  )

  const llm = Fallback.layer([
    Local.layer({ baseUrl: "http://127.0.0.1:9", model: "gpt-oss:120b" }),
    Anthropic.layer({ baseUrl: cloud.url, apiKey: Redacted.make("demo-key-not-real") })
  ])
  const app = Conversation.layer({ systemMessage: "You are a friendly voice assistant.", maxTurns: 10 }).pipe(
    Layer.provide(llm)
  )

  yield* Effect.gen(function*() {
    const conversation = yield* Conversation.Conversation
    const toolkit = Toolkit.make(getWeather)
    for (const text of turns) {
      yield* Console.log(`🧑 ${text}`)
      process.stdout.write("🤖 ")
      const started = performance.now()
      let firstToken: number | undefined
      let finish: Extract<StreamEvent, { _tag: "Finish" }> | undefined
      let toolCalls = 0
      yield* conversation.sendStream(text, { toolkit }).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            if (event._tag === "TextDelta") {
              firstToken ??= performance.now() - started
              process.stdout.write(event.text)
            } else if (event._tag === "ToolCall") {
              toolCalls++
              process.stdout.write(`[calling ${event.toolCall.name}(${JSON.stringify(event.toolCall.arguments)})] `)
            } else if (event._tag === "Finish") {
              finish = event
            }
          })
        )
      )
      const skipped = (finish?.metadata.fallbacks ?? []).map((f) => `${f.provider} ${f.error ? "down" : "skipped"}`)
        .join(", ")
      yield* Console.log(
        `\n   ↳ backend: ${finish?.metadata.provider ?? "?"}${skipped ? ` (after ${skipped})` : ""}` +
          ` · tokens: ${finish?.usage.totalTokens ?? 0}` +
          ` · first token: ${firstToken === undefined ? "-" : `${firstToken.toFixed(1)} ms`}` +
          ` · total: ${(performance.now() - started).toFixed(1)} ms` +
          (toolCalls > 0 ? ` · tool calls: ${toolCalls}` : "") + "\n"
      )
    }
    const context = yield* conversation.context
    yield* Console.log(`Conversation: ${context.messages.map((m) => m.role).join(" > ")}`)
  }).pipe(Effect.provide(app))
})

program.pipe(
  Effect.scoped,
  // fallback warnings are for operators' logs; the demo prints the outcome per turn instead
  Logger.withMinimumLogLevel(LogLevel.Error),
  Effect.runPromise
)
