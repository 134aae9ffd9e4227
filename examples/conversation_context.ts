/**
 * Conversation context: a multi-turn conversation that remembers, kept
 * within 10 turns. Run: npx tsx examples/conversation_context.ts
 */
import { Console, Effect, Layer } from "effect"
import { Conversation } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const conversation = yield* Conversation.Conversation
  for (const question of ["My name is Alice.", "What is my name?"]) {
    const reply = yield* conversation.send(question)
    yield* Console.log(`User: ${question}\nAssistant: ${reply.content}`)
  }
  const context = yield* conversation.context
  yield* Console.log(
    `Turns kept: ${context.turns.length}; saved as ${JSON.stringify(context.encode()).length} bytes of JSON`
  )
})

const ConversationLive = Conversation.layer({ systemMessage: "You are a helpful assistant.", maxTurns: 10 }).pipe(
  Layer.provide(exampleLlm([
    { kind: "reply", text: "Nice to meet you, Alice!" },
    { kind: "reply", text: "Your name is Alice." }
  ]))
)

program.pipe(Effect.provide(ConversationLive), Effect.runPromise)
