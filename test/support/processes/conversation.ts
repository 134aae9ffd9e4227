/**
 * A child holding one conversation (`CONVERSATION_ID`) stored in Redis (`REDIS_URL`), talking to the fake
 * provider (`LLM_URL`). Commands: `{ op: "send", text }` answers the reply's text once the turn is recorded;
 * `{ op: "stream", text }` answers `{ streaming }` at the reply's first text and `{ streamed }` at its end;
 * `{ op: "context" }` answers the encoded context.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Conversation from "../../../src/Conversation.js"
import * as OpenAi from "../../../src/layers/OpenAi.js"
import * as SharedState from "../../../src/SharedState.js"
import { commands, reply } from "../processes.js"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const runtime = ManagedRuntime.make(
  Conversation.layer({ id: env("CONVERSATION_ID"), systemMessage: "Be brief.", maxTurns: 50 }).pipe(
    Layer.provide(
      OpenAi.layer({ baseUrl: `${env("LLM_URL")}/v1`, apiKey: Redacted.make(env("LLM_KEY")), model: "gpt-x" })
    ),
    Layer.provide(SharedState.layerRedis({ url: env("REDIS_URL"), keyPrefix: "p:", commandTimeout: "1 second" }))
  )
)

const run = <A>(effect: Effect.Effect<A, unknown, Conversation.Conversation>) =>
  runtime.runPromise(effect).then(
    (value) => value,
    (error: unknown) => ({ error: String(error) })
  )

const context = Effect.map(Conversation.Conversation, (c) => c.context).pipe(
  Effect.flatten,
  Effect.map((context) => context.encode())
)
reply({ ready: process.pid, context: await run(context) })

for await (const command of commands()) {
  const { op, text } = command as { readonly op: string; readonly text?: string }
  if (op === "send") {
    // answered in order of completion: the test matches answers by their text
    void run(Effect.flatMap(Conversation.Conversation, (c) => c.send(text!))).then((result) =>
      reply({ sent: text, reply: "content" in result ? result.content : result })
    )
  } else if (op === "stream") {
    let first = true
    void run(
      Effect.flatMap(
        Conversation.Conversation,
        (c) =>
          Stream.runForEach(c.sendStream(text!), (event) =>
            Effect.sync(() => {
              if (event._tag === "TextDelta" && first) {
                first = false
                reply({ streaming: text })
              }
            }))
      )
    ).then(() => reply({ streamed: text }))
  } else if (op === "context") {
    reply({ context: await run(context) })
  }
}
