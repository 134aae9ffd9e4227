/**
 * Basic completion: one question, one answer, with usage and metadata.
 * Run: npx tsx examples/basic_completion.ts
 */
import { Console, Effect } from "effect"
import { Llm, Message } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const result = yield* Llm.complete([
    Message.system("You are a helpful assistant. Answer in one sentence."),
    Message.user("What is the capital of France?")
  ], { temperature: 0.2, maxTokens: 100 })
  yield* Console.log(`Answer: ${result.content}`)
  yield* Console.log(`Model: ${result.model}, finish: ${result.finishReason}, tokens: ${result.tokensUsed}`)
})

program.pipe(
  Effect.provide(
    exampleLlm([{
      kind: "reply",
      text: "The capital of France is Paris.",
      usage: { inputTokens: 24, outputTokens: 8 }
    }])
  ),
  Effect.runPromise
)
