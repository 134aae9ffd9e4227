/**
 * Adaptive local-to-cloud fallback: the local server is down, so calls go to
 * the cloud backend at once; after three failures the local breaker opens and
 * the dead server costs nothing per call.
 * Run: npx tsx examples/adaptive_fallback.ts
 */
import { Console, Effect } from "effect"
import { Fallback, Llm, Local, Message, OpenAi } from "../src/index.js"
import { fakeProvider } from "./support/backend.js"

const program = Effect.gen(function*() {
  const cloud = yield* fakeProvider
  cloud.setDefault({ kind: "reply", text: "Answered by the cloud backend." })
  yield* Console.log(`(local server: http://127.0.0.1:9, down; cloud: the fake provider at ${cloud.url})`)
  const chain = Fallback.layer([
    Local.layer({ baseUrl: process.env.LLM_LOCAL_BASE_URL ?? "http://127.0.0.1:9" }),
    OpenAi.layer({ baseUrl: `${cloud.url}/v1` })
  ], { circuitBreaker: { failureThreshold: 3, cooldown: "30 seconds" } })

  yield* Effect.gen(function*() {
    for (let turn = 1; turn <= 5; turn++) {
      const started = Date.now()
      const result = yield* Llm.complete([Message.user(`Question ${turn}`)])
      const tried = (result.metadata.fallbacks ?? [])
        .map((failure) =>
          `${failure.provider} ${failure.error ? `failed (${failure.error._tag})` : "skipped (breaker open)"}`
        )
        .join(", ")
      yield* Console.log(`turn ${turn}: ${result.metadata.provider} answered in ${Date.now() - started} ms; ${tried}`)
    }
  }).pipe(Effect.provide(chain))
})

program.pipe(Effect.scoped, Effect.runPromise)
