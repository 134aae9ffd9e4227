/**
 * A child for the shared-breaker tests: a local primary and an OpenAI
 * secondary (the fake providers at PRIMARY_URL and SECONDARY_URL) behind one
 * `Fallback` whose breakers (threshold 2, cooldown COOLDOWN_MS) are shared
 * through the Redis at REDIS_URL under KEY_PREFIX.
 *
 * Commands: `{ calls, concurrent? }` makes that many calls (at once when
 * `concurrent`) and answers each one's text and what happened to the primary
 * (`skipped`, `failed`, or `answered`); `{ status: true }` answers whether
 * both Redis connections answer.
 */
import { NodeHttpClient } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Fallback from "../../../src/layers/Fallback.js"
import * as Local from "../../../src/layers/Local.js"
import * as OpenAi from "../../../src/layers/OpenAi.js"
import * as Llm from "../../../src/Llm.js"
import * as Message from "../../../src/Message.js"
import * as SharedState from "../../../src/SharedState.js"
import { commands, reply } from "../processes.js"

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const noRetry = { retry: { maxRetries: 0 } }
const shared = SharedState.layerRedis({ url: env("REDIS_URL"), keyPrefix: env("KEY_PREFIX") })
const chain = Fallback.layer([
  { layer: Local.layer({ ...noRetry, baseUrl: env("PRIMARY_URL"), model: "gpu-model" }), name: "gpu" },
  OpenAi.layer({ ...noRetry, baseUrl: `${env("SECONDARY_URL")}/v1` })
], { circuitBreaker: { failureThreshold: 2, cooldown: Number(env("COOLDOWN_MS")) } })
const runtime = ManagedRuntime.make(
  Layer.provideMerge(chain, shared).pipe(Layer.provide(NodeHttpClient.layerUndici))
)

const call = Effect.map(Llm.complete([Message.user("Hello?")]), (result) => {
  const primary = result.metadata.fallbacks?.[0]
  return {
    text: result.content,
    primary: primary === undefined ? "answered" : primary.skipped === true ? "skipped" : "failed"
  }
})

const status = Effect.gen(function*() {
  const state = yield* SharedState.SharedState
  if (state._tag !== "Redis") return { redis: false, subscriber: false }
  const { connection } = state
  const redis = Option.isSome(yield* connection.run((client) => client.ping()))
  const subscriber = yield* Effect.promise(() => connection.subscriber().ping().then(() => true, () => false))
  return { redis, subscriber }
})

await runtime.runPromise(Effect.void)
reply({ ready: process.pid })
for await (const command of commands()) {
  const { calls, concurrent } = command as { calls?: number; concurrent?: boolean; status?: true }
  if (calls === undefined) {
    reply(await runtime.runPromise(status))
    continue
  }
  const results = await runtime.runPromise(
    Effect.all(Array.from({ length: calls }, () => call), { concurrency: concurrent === true ? "unbounded" : 1 })
  )
  reply(results)
}
