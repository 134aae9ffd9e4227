/**
 * Tool calling: a Schema-typed tool; the toolkit loop runs it and gives the
 * model the result. Run: npx tsx examples/tool_calling.ts
 */
import { Console, Effect, Schema } from "effect"
import { Message, Tool, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const getWeather = Tool.make("get_weather", {
  description: "Get the current weather for a city",
  parameters: Schema.Struct({
    location: Schema.String.annotations({ description: "City name" }),
    unit: Schema.optional(Schema.Literal("celsius", "fahrenheit"))
  }),
  handler: ({ location, unit }) =>
    Effect.succeed({ location, temperature: unit === "fahrenheit" ? 64 : 18, conditions: "partly cloudy" })
})

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const { added, result, steps } = yield* Toolkit.run(
    [Message.user("What's the weather in Paris?")],
    Toolkit.make(getWeather)
  )
  for (const message of added) {
    if (message.role === "assistant" && message.toolCalls.length > 0) {
      for (const call of message.toolCalls) {
        yield* Console.log(`Tool call: ${call.name}(${JSON.stringify(call.arguments)})`)
      }
    } else if (message.role === "tool") {
      yield* Console.log(`Tool result: ${message.content}`)
    }
  }
  yield* Console.log(`Answer: ${result.content} (${steps} model calls)`)
})

program.pipe(
  Effect.provide(exampleLlm([
    { kind: "reply", toolCalls: [{ id: "call_1", name: "get_weather", arguments: { location: "Paris" } }] },
    { kind: "reply", text: "It's 18°C and partly cloudy in Paris." }
  ])),
  Effect.runPromise
)
