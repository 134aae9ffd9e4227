/**
 * A child for the multi-process rate-limit tests: one local backend on the
 * fake provider at `PROVIDER_URL`, its budget (`RPM` requests a minute)
 * shared through the Redis at `REDIS_URL`. Each command `{ calls: n }` sends
 * n calls at once and answers how each ended.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Local from "../../../src/layers/Local.js"
import * as Llm from "../../../src/Llm.js"
import * as Message from "../../../src/Message.js"
import * as SharedState from "../../../src/SharedState.js"
import { commands, reply } from "../processes.js"

const runtime = ManagedRuntime.make(
  Local.layer({
    baseUrl: process.env.PROVIDER_URL!,
    model: "m",
    timeout: "5 seconds",
    retry: { maxRetries: 0 },
    rateLimit: { requestsPerMinute: Number(process.env.RPM) }
  }).pipe(Layer.provide(SharedState.layerRedis({ url: process.env.REDIS_URL!, commandTimeout: "2 seconds" })))
)

/** How one call ended: `ok`, or its error's tag, status and limit. */
const outcome = Llm.complete([Message.user("Hello?")]).pipe(
  Effect.map(() => ({ ok: true })),
  Effect.catchAll((error) =>
    Effect.succeed({
      ok: false,
      tag: error._tag,
      status: error.status,
      limit: error._tag === "LlmRateLimitError" ? error.limit : undefined
    })
  )
)

await runtime.runtime()
reply({ ready: process.pid })
for await (const command of commands()) {
  const { calls } = command as { readonly calls: number }
  reply(
    await runtime.runPromise(Effect.all(Array.from({ length: calls }, () => outcome), { concurrency: "unbounded" }))
  )
}
