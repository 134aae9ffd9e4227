/**
 * Rate limits shared by real processes: three child processes, each with
 * its own backend layer and Redis connection, against one real Redis and one
 * fake provider (counting what arrives). Between them they send no more than
 * their shared budget, and a 429's Retry-After seen by one holds the others
 * back until it passes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FakeProvider from "./support/FakeProvider.js"
import { child } from "./support/processes.js"
import { testRedis } from "./support/redis.js"

/** How a child's call ended (see test/support/processes/rateLimited.ts). */
interface Outcome {
  readonly ok: boolean
  readonly tag?: string
  readonly status?: number
  readonly limit?: string
}

/** Three children sharing a budget of `rpm` requests a minute on `server`, through `redisUrl`, once each is ready. */
const children = (server: FakeProvider.FakeProvider, redisUrl: string, rpm: number) =>
  Effect.gen(function*() {
    const env = { PROVIDER_URL: server.url, REDIS_URL: redisUrl, RPM: String(rpm) }
    const all = [
      yield* child("rateLimited.ts", env),
      yield* child("rateLimited.ts", env),
      yield* child("rateLimited.ts", env)
    ]
    yield* Effect.promise(() => Promise.all(all.map((one) => one.next())))
    return all
  })

const calls = (one: { readonly ask: (message: unknown) => Promise<unknown> }, n: number) =>
  one.ask({ calls: n }) as Promise<ReadonlyArray<Outcome>>

describe("rate limits across processes", () => {
  it.scoped(
    "three processes share N requests a minute and send no more than N between them",
    () =>
      Effect.gen(function*() {
        const redis = yield* testRedis
        const server = yield* FakeProvider.make
        // 6 a minute refills one every 10 s: longer than the calls take, and than their 5 s deadline
        const all = yield* children(server, redis.url, 6)
        const outcomes = (yield* Effect.promise(() => Promise.all(all.map((one) => calls(one, 5))))).flat()
        expect(outcomes).toHaveLength(15)
        const sent = outcomes.filter((outcome) => outcome.ok)
        expect(server.requests.length).toBe(6)
        expect(sent).toHaveLength(6)
        for (const refused of outcomes.filter((outcome) => !outcome.ok)) {
          expect(refused).toEqual({ ok: false, tag: "LlmRateLimitError", limit: "requests" })
        }
      }),
    60_000
  )

  it.scoped(
    "a 429 with Retry-After seen by one process holds the others back until it passes",
    () =>
      Effect.gen(function*() {
        const redis = yield* testRedis
        const server = yield* FakeProvider.make
        const [one, two, three] = yield* children(server, redis.url, 600)
        server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "1" } })
        expect(yield* Effect.promise(() => calls(one!, 1))).toEqual([
          { ok: false, tag: "LlmRateLimitError", status: 429 }
        ])
        const held = (yield* Effect.promise(() => Promise.all([calls(two!, 2), calls(three!, 2), calls(one!, 1)])))
          .flat()
        for (const outcome of held) {
          expect(outcome).toEqual({ ok: false, tag: "LlmRateLimitError", limit: "retryAfter" })
        }
        expect(server.requests.length).toBe(1)
        // once it has passed, they send again
        let answered: ReadonlyArray<Outcome> = []
        for (let i = 0; i < 100; i++) {
          answered = yield* Effect.promise(() => calls(two!, 1))
          if (answered[0]?.ok) break
          expect(answered[0]).toEqual({ ok: false, tag: "LlmRateLimitError", limit: "retryAfter" })
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
        }
        expect(answered).toEqual([{ ok: true }])
        expect(yield* Effect.promise(() => calls(three!, 1))).toEqual([{ ok: true }])
        expect(server.requests.length).toBe(3)
      }),
    60_000
  )
})
