/**
 * Rate limits before sending, over real HTTP to the fake provider: budgets of
 * requests and tokens a minute (a call waits for its share within its
 * deadline, or fails at once with `LlmRateLimitError` and nothing is sent),
 * a 429's Retry-After holding the backend, and the same behaviour whether the
 * buckets live in memory or in a real Redis (shared by several layers, as by
 * several processes; this process's own buckets while Redis is down). The
 * bucket's arithmetic is checked against the Lua script that runs it in Redis.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { LlmError } from "../src/errors.js"
import * as RateLimiter from "../src/internal/rateLimiter.js"
import * as RedisConnection from "../src/internal/redisConnection.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as SharedState from "../src/SharedState.js"
import * as LlmStream from "../src/Stream.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { testRedis } from "./support/redis.js"

const hi = [Message.user("Hello?")]
const noRetry: ProviderOptions = { retry: { maxRetries: 0 } }

/** Waits on the real clock (Redis answers, forked fibers reach their sleep). */
const pause = (millis = 50) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Waits (real time) until a fiber sleeps on the test clock until `at` millis. */
const sleepingUntil = (at: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (Chunk.some(yield* TestClock.sleeps(), (wake) => wake === at)) return
      yield* pause(10)
    }
    throw new Error(`no fiber sleeps until ${at}`)
  })

/** The failure of `effect`, which must fail. */
const failureOf = <A, R>(effect: Effect.Effect<A, LlmError, R>) =>
  Effect.flatMap(
    Effect.either(effect),
    (either) => Either.isLeft(either) ? Effect.succeed(either.left) : Effect.die(new Error("expected a failure"))
  )

/** Where the buckets live: memory, or a Redis started for the test (each `state` a connection of its own, as a process has). */
interface Store {
  readonly name: string
  readonly state: Effect.Effect<() => Layer.Layer<SharedState.SharedState>, never, Scope.Scope>
}

const stores: ReadonlyArray<Store> = [
  { name: "memory", state: Effect.succeed(() => SharedState.layerMemory) },
  {
    name: "redis",
    state: Effect.map(
      testRedis,
      (redis) => () => SharedState.layerRedis({ url: redis.url, commandTimeout: "2 seconds" })
    )
  }
]

/** A local backend on `server` with these options, its state from `state`, built once for the scope. */
const backend = (
  server: FakeProvider.FakeProvider,
  state: Layer.Layer<SharedState.SharedState>,
  options: ProviderOptions
) =>
  Effect.map(
    Layer.build(Local.layer({ baseUrl: server.url, model: "m", ...noRetry, ...options }).pipe(Layer.provide(state))),
    (context) => Context.get(context, Llm.Llm)
  )

for (const store of stores) {
  describe(`rate limits, ${store.name}`, () => {
    it.scoped("sends a minute's requests at once, then refuses at once a call that would wait past its deadline", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        const llm = yield* backend(server, state(), {
          rateLimit: { requestsPerMinute: 2 },
          timeout: "10 seconds",
          // a refusal is not retried, however many retries are allowed
          retry: { maxRetries: 3, initialDelay: "1 millis" }
        })
        expect((yield* llm.complete(hi)).content).toBe("ok")
        expect((yield* llm.complete(hi)).content).toBe("ok")
        const refused = yield* failureOf(llm.complete(hi))
        expect(refused._tag).toBe("LlmRateLimitError")
        if (refused._tag !== "LlmRateLimitError") return
        expect(refused.limit).toBe("requests")
        expect(refused.status).toBeUndefined()
        expect(Duration.toMillis(refused.retryAfter!)).toBe(30_000)
        expect(refused.message).toBe(
          "local (m): the rate limit of 2 requests a minute allows this request in 30s, after its deadline (10s); nothing was sent"
        )
        expect(server.requests.length).toBe(2)
        // a stream is refused the same way
        const streamRefused = yield* failureOf(LlmStream.collect(llm.stream(hi)))
        expect(streamRefused).toMatchObject({ _tag: "LlmRateLimitError", limit: "requests" })
        expect(server.requests.length).toBe(2)
        // the bucket refills continuously: half a minute later, one request
        yield* TestClock.adjust("30 seconds")
        expect((yield* LlmStream.collect(llm.stream(hi))).content).toBe("ok")
        expect(yield* failureOf(llm.complete(hi))).toMatchObject({ limit: "requests" })
        expect(server.requests.length).toBe(3)
      }))

    it.scoped("a call waits for its budget when the wait is within its deadline", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        const llm = yield* backend(server, state(), { rateLimit: { requestsPerMinute: 2 }, timeout: "60 seconds" })
        yield* llm.complete(hi)
        yield* llm.complete(hi)
        const waiting = yield* Effect.fork(llm.complete(hi))
        yield* sleepingUntil(30_000)
        yield* TestClock.adjust("29 seconds")
        yield* pause()
        expect(server.requests.length).toBe(2)
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(waiting)).content).toBe("ok")
        expect(server.requests.length).toBe(3)
        // a stream waits within its first-token deadline
        const stream = yield* Effect.fork(LlmStream.collect(llm.stream(hi, { firstTokenTimeout: "40 seconds" })))
        yield* sleepingUntil(60_000)
        yield* TestClock.adjust("30 seconds")
        expect((yield* Fiber.join(stream)).content).toBe("ok")
        expect(server.requests.length).toBe(4)
        // ... and is refused when its first-token deadline is shorter than the wait
        const short = yield* failureOf(LlmStream.collect(llm.stream(hi, { firstTokenTimeout: "20 seconds" })))
        expect(short).toMatchObject({ _tag: "LlmRateLimitError", limit: "requests" })
        expect(server.requests.length).toBe(4)
      }))

    it.scoped("an interrupted wait gives its budget back", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        const llm = yield* backend(server, state(), { rateLimit: { requestsPerMinute: 1 }, timeout: "150 seconds" })
        yield* llm.complete(hi)
        const waiting = yield* Effect.fork(llm.complete(hi))
        yield* sleepingUntil(60_000)
        yield* Fiber.interrupt(waiting)
        yield* pause()
        // had the interrupted call kept its place, the next one would wait two minutes
        const refused = yield* failureOf(llm.complete(hi, { timeout: "10 seconds" }))
        expect(refused).toMatchObject({ _tag: "LlmRateLimitError", limit: "requests" })
        if (refused._tag === "LlmRateLimitError") expect(Duration.toMillis(refused.retryAfter!)).toBe(60_000)
        expect(server.requests.length).toBe(1)
      }))

    it.scoped("tokens are reserved as an estimate and settled with the usage the reply reports", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        server.setDefault({ kind: "reply", text: "ok", usage: { inputTokens: 12, outputTokens: 3 } })
        const llm = yield* backend(server, state(), { rateLimit: { tokensPerMinute: 1_000 }, timeout: "10 seconds" })
        // each reserves its prompt and 600 tokens of output: without settling, the second would wait ~16 s
        expect((yield* llm.complete(hi, { maxTokens: 600 })).content).toBe("ok")
        expect((yield* LlmStream.collect(llm.stream(hi, { maxTokens: 600 }))).content).toBe("ok")
        expect((yield* llm.complete(hi, { maxTokens: 600 })).content).toBe("ok")
        expect(server.requests.length).toBe(3)
        // 45 tokens used: a request of a whole minute's tokens waits ~3 s, past a 1 s deadline
        const refused = yield* failureOf(llm.complete(hi, { maxTokens: 990, timeout: "1 second" }))
        expect(refused).toMatchObject({ _tag: "LlmRateLimitError", limit: "tokens" })
        if (refused._tag !== "LlmRateLimitError") return
        expect(Duration.toMillis(refused.retryAfter!)).toBe(2_700)
        expect(refused.message).toContain(
          "the rate limit of 1000 tokens a minute allows this request (about 1000 tokens) in"
        )
        expect(server.requests.length).toBe(3)
      }))

    it.scoped("a 429's Retry-After holds the backend: later calls fail at once until it passes", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        const llm = yield* backend(server, state(), { rateLimit: { requestsPerMinute: 100 } })
        server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "5" } })
        const first = yield* failureOf(llm.complete(hi))
        expect(first).toMatchObject({ _tag: "LlmRateLimitError", status: 429 })
        expect(first).not.toHaveProperty("limit")
        const held = yield* failureOf(llm.complete(hi))
        expect(held).toMatchObject({ _tag: "LlmRateLimitError", limit: "retryAfter" })
        if (held._tag === "LlmRateLimitError") expect(Duration.toMillis(held.retryAfter!)).toBe(5_000)
        expect(held.message).toBe("local (m): held by a 429's Retry-After for 5s more; nothing was sent")
        yield* TestClock.adjust("3 seconds")
        const stillHeld = yield* failureOf(LlmStream.collect(llm.stream(hi)))
        expect(stillHeld).toMatchObject({ _tag: "LlmRateLimitError", limit: "retryAfter" })
        if (stillHeld._tag === "LlmRateLimitError") expect(Duration.toMillis(stillHeld.retryAfter!)).toBe(2_000)
        expect(server.requests.length).toBe(1)
        yield* TestClock.adjust("2 seconds")
        expect((yield* llm.complete(hi)).content).toBe("ok")
        expect(server.requests.length).toBe(2)
      }))

    it.scoped("the call that got the 429 retries after its Retry-After as before", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        const llm = yield* backend(server, state(), {
          rateLimit: { requestsPerMinute: 100 },
          retry: { maxRetries: 1 }
        })
        server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "2" } })
        const call = yield* Effect.fork(llm.complete(hi))
        yield* sleepingUntil(2_000)
        yield* TestClock.adjust("2 seconds")
        const result = yield* Fiber.join(call)
        expect(result.content).toBe("ok")
        expect(result.metadata.attempts).toBe(2)
        expect(server.requests.length).toBe(2)
      }))

    it.scoped("options a budget cannot take fail every call, and nothing is sent", () =>
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const state = yield* store.state
        for (
          const [rateLimit, expected] of [
            [{ requestsPerMinute: 0 }, "the rateLimit.requestsPerMinute option must be a positive number, got 0"],
            [
              { tokensPerMinute: Number.NaN },
              "the rateLimit.tokensPerMinute option must be a positive number, got null"
            ],
            [{ name: "" }, "the rateLimit.name option must be text on one line"]
          ] as const
        ) {
          const llm = yield* backend(server, state(), { rateLimit })
          const error = yield* failureOf(llm.complete(hi))
          expect(error._tag).toBe("LlmInvalidRequestError")
          expect(error.message).toContain(expected)
        }
        expect(server.requests.length).toBe(0)
      }))
  })
}

describe("rate limits in memory", () => {
  it.scoped("without a budget nothing changes: a 429 holds only the call that got it", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const llm = yield* backend(server, SharedState.layerMemory, {})
      server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "5" } })
      expect(yield* failureOf(llm.complete(hi))).toMatchObject({ status: 429 })
      expect((yield* llm.complete(hi)).content).toBe("ok")
      expect(server.requests.length).toBe(2)
    }))

  it.scoped("are each layer's own", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const one = yield* backend(server, SharedState.layerMemory, { rateLimit: { requestsPerMinute: 1 } })
      const two = yield* backend(server, SharedState.layerMemory, { rateLimit: { requestsPerMinute: 1 } })
      yield* one.complete(hi)
      yield* two.complete(hi)
      expect(server.requests.length).toBe(2)
    }))

  /** A chain whose primary (a local server) may send one request a minute, and an OpenAI secondary that answers. */
  const limitedChain = (options?: Fallback.FallbackOptions) =>
    Effect.gen(function*() {
      const primary = yield* FakeProvider.make
      const secondary = yield* FakeProvider.make
      secondary.setDefault({ kind: "reply", text: "from the secondary" })
      const chain = Fallback.layer([
        Local.layer({ baseUrl: primary.url, ...noRetry, timeout: "10 seconds", rateLimit: { requestsPerMinute: 1 } }),
        OpenAi.layer({ baseUrl: `${secondary.url}/v1`, ...noRetry })
      ], options)
      return { llm: Context.get(yield* Layer.build(chain), Llm.Llm), primary }
    })

  it.scoped("a refused backend lets a fallback move on at once", () =>
    Effect.gen(function*() {
      const { llm, primary } = yield* limitedChain()
      expect((yield* llm.complete(hi)).content).toBe("ok")
      const moved = yield* llm.complete(hi)
      expect(moved.content).toBe("from the secondary")
      expect(moved.metadata.fallbacks?.[0]?.error).toMatchObject({ _tag: "LlmRateLimitError", limit: "requests" })
      expect(primary.requests.length).toBe(1)
    }))

  it.scoped("refusals before sending do not open the backend's breaker: it is used again once its budget is back", () =>
    Effect.gen(function*() {
      const { llm, primary } = yield* limitedChain({ circuitBreaker: { failureThreshold: 2, cooldown: "1 hour" } })
      expect((yield* llm.complete(hi)).content).toBe("ok")
      // three refusals in a row: each moves on, none counts against the primary's health
      for (let i = 0; i < 3; i++) expect((yield* llm.complete(hi)).content).toBe("from the secondary")
      yield* TestClock.adjust("61 seconds")
      expect((yield* llm.complete(hi)).content).toBe("ok")
      expect(primary.requests.length).toBe(2)
    }))
})

describe("rate limits in Redis", () => {
  it.scoped("several layers (as several processes) share one budget", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const state = yield* stores[1]!.state
      const options: ProviderOptions = { rateLimit: { requestsPerMinute: 3 }, timeout: "10 seconds" }
      const one = yield* backend(server, state(), options)
      const two = yield* backend(server, state(), options)
      yield* one.complete(hi)
      yield* two.complete(hi)
      yield* one.complete(hi)
      expect(yield* failureOf(two.complete(hi))).toMatchObject({ limit: "requests" })
      expect(yield* failureOf(one.complete(hi))).toMatchObject({ limit: "requests" })
      expect(server.requests.length).toBe(3)
      // another model of the same backend has its own budget; a name shares one across models
      yield* one.complete(hi, { model: "other" })
      const named = yield* backend(server, state(), { ...options, rateLimit: { requestsPerMinute: 1, name: "gpu" } })
      const alsoNamed = yield* backend(server, state(), {
        ...options,
        model: "n",
        rateLimit: { requestsPerMinute: 1, name: "gpu" }
      })
      yield* named.complete(hi)
      expect(yield* failureOf(alsoNamed.complete(hi))).toMatchObject({ limit: "requests", model: "n" })
      expect(server.requests.length).toBe(5)
    }))

  it.scoped("a 429 seen by one layer holds the others, even without a budget (heard of, without a round trip)", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const redis = yield* testRedis
      const state = () => SharedState.layerRedis({ url: redis.url, commandTimeout: "2 seconds" })
      const one = yield* backend(server, state(), {})
      const two = yield* backend(server, state(), {})
      // each layer's connection hears of holds once subscribed
      const watcher = yield* RedisConnection.make({ url: redis.url })
      for (let i = 0; i < 100; i++) {
        const counts = yield* watcher.run((c) => c.pubsub("NUMSUB", "effect-llm:limit:held"))
        if (Option.isSome(counts) && counts.value[1] === 2) break
        yield* pause(20)
      }
      server.enqueue({ kind: "status", status: 429, headers: { "retry-after-ms": "4000" } })
      expect(yield* failureOf(one.complete(hi))).toMatchObject({ status: 429 })
      yield* pause()
      const held = yield* failureOf(two.complete(hi))
      expect(held).toMatchObject({ _tag: "LlmRateLimitError", limit: "retryAfter" })
      if (held._tag === "LlmRateLimitError") expect(Duration.toMillis(held.retryAfter!)).toBe(4_000)
      expect(server.requests.length).toBe(1)
      yield* TestClock.adjust("4 seconds")
      expect((yield* two.complete(hi)).content).toBe("ok")
    }))

  it.scoped("keys name the backend and a fingerprint, never the API key", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const redis = yield* testRedis
      const secret = "sk-rate-limit-secret-123456"
      const llm = yield* backend(server, SharedState.layerRedis({ url: redis.url, keyPrefix: "k:" }), {
        apiKey: Redacted.make(secret),
        rateLimit: { requestsPerMinute: 5, tokensPerMinute: 10_000 }
      })
      server.enqueue({ kind: "status", status: 429, headers: { "retry-after": "1" } })
      yield* Effect.either(llm.complete(hi))
      yield* TestClock.adjust("2 seconds")
      yield* llm.complete(hi)
      const connection = yield* RedisConnection.make({ url: redis.url })
      yield* pause()
      const keys = Option.getOrThrow(yield* connection.run((c) => c.keys("*")))
      const fingerprint = RateLimiter.keyFingerprint(`${server.url}/v1\n\n`)
      expect(fingerprint).toMatch(/^[0-9a-f]{16}$/)
      expect(keys).toHaveLength(1)
      expect(keys[0]).toMatch(/^k:limit:local:m:[0-9a-f]{16}$/)
      // a fingerprint of the base URL and the key: not the key's, nor the key-less one's
      expect(keys[0]).not.toBe(`k:limit:local:m:${fingerprint}`)
      expect(keys[0]).not.toBe(`k:limit:local:m:${RateLimiter.keyFingerprint(secret)}`)
      const values = Option.getOrThrow(yield* connection.run((c) => c.hgetall(keys[0]!)))
      expect(Object.keys(values).sort()).toEqual(["at", "held", "r", "t"])
      for (const value of Object.values(values)) expect(Number.isFinite(Number(value))).toBe(true)
      expect(JSON.stringify([keys, values])).not.toContain(secret)
      const ttl = Option.getOrThrow(yield* connection.run((c) => c.pttl(keys[0]!)))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(61_000)
    }))

  it.scoped("while Redis is down each process limits with its own buckets; once back, the budget is shared again", () =>
    Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const redis = yield* testRedis
      const state = () => SharedState.layerRedis({ url: redis.url, commandTimeout: "2 seconds" })
      const options: ProviderOptions = { rateLimit: { requestsPerMinute: 2 }, timeout: "10 seconds" }
      const one = yield* backend(server, state(), options)
      const two = yield* backend(server, state(), options)
      yield* one.complete(hi)
      yield* two.complete(hi)
      expect(yield* failureOf(one.complete(hi))).toMatchObject({ limit: "requests" })
      yield* Effect.promise(() => redis.stop())
      // each layer's own bucket, untouched while Redis answered: two calls each, then refusals
      for (const llm of [one, two]) {
        expect((yield* llm.complete(hi)).content).toBe("ok")
        expect((yield* llm.complete(hi)).content).toBe("ok")
        expect(yield* failureOf(llm.complete(hi))).toMatchObject({ limit: "requests" })
      }
      expect(server.requests.length).toBe(6)
      yield* Effect.promise(() => redis.start())
      // Redis restarted empty: one shared bucket of two again
      let shared = false
      for (let i = 0; i < 100 && !shared; i++) {
        yield* pause(50)
        const probe = yield* RedisConnection.make({ url: redis.url })
        shared = Option.isSome(yield* probe.run((c) => c.ping()))
      }
      expect(shared).toBe(true)
      // each layer's connection reconnects in the background; until then its own bucket refuses
      for (const llm of [one, two]) {
        let sent = false
        for (let i = 0; i < 100 && !sent; i++) {
          sent = Either.isRight(yield* Effect.either(llm.complete(hi)))
          if (!sent) yield* pause(50)
        }
        expect(sent).toBe(true)
      }
      expect(yield* failureOf(one.complete(hi))).toMatchObject({ limit: "requests" })
      expect(yield* failureOf(two.complete(hi))).toMatchObject({ limit: "requests" })
      expect(server.requests.length).toBe(8)
    }))

  it.scoped("the Lua script answers as the bucket's arithmetic does, step by step", () =>
    Effect.gen(function*() {
      const redis = yield* testRedis
      const connection = yield* RedisConnection.make({ url: redis.url, commandTimeout: "2 seconds" })
      const commands = RateLimiter.commandsOf(connection)
      const run = <A>(command: () => Promise<A>) => Effect.map(connection.run(command), Option.getOrThrow)
      // a small deterministic generator, so that a failure can be replayed
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      for (
        const budget of [
          { requestsPerMinute: 3, tokensPerMinute: 0 },
          { requestsPerMinute: 0, tokensPerMinute: 500 },
          { requestsPerMinute: 2.5, tokensPerMinute: 1_000 }
        ]
      ) {
        const key = `lua:${budget.requestsPerMinute}:${budget.tokensPerMinute}`
        let bucket: RateLimiter.Bucket | undefined
        let now = 1_000_000
        for (let step = 0; step < 200; step++) {
          now += Math.floor(random() * 8_000)
          const args = [now, budget.requestsPerMinute, budget.tokensPerMinute] as const
          const op = random()
          if (op < 0.7) {
            const need = Math.floor(random() * 700)
            const maxWait = Math.floor(random() * 40_000)
            const [next, answer] = RateLimiter.take(bucket, now, budget, need, maxWait)
            bucket = next
            expect(yield* run(() => commands.effectLlmLimitTake(key, ...args, need, maxWait))).toEqual(answer)
          } else if (op < 0.9) {
            const tokens = Math.floor(random() * 600) - 200
            bucket = RateLimiter.giveBack(bucket, now, budget, 1, tokens)
            yield* run(() => commands.effectLlmLimitGiveBack(key, ...args, 1, tokens))
          } else {
            const until = now + Math.floor(random() * 5_000)
            bucket = RateLimiter.refill(bucket, now, budget)
            bucket.heldUntil = Math.max(bucket.heldUntil, until)
            yield* run(() => commands.effectLlmLimitHold(key, ...args, until))
          }
          // compared refilled to now: a refused take stores nothing, which refilling later makes up for
          const stored = yield* run(() => connection.client.hgetall(key))
          const inRedis = RateLimiter.refill(
            stored.at === undefined
              ? undefined
              : {
                requests: Number(stored.r),
                tokens: Number(stored.t),
                at: Number(stored.at),
                heldUntil: Number(stored.held)
              },
            now,
            budget
          )
          const here = RateLimiter.refill(bucket, now, budget)
          expect(inRedis.requests).toBeCloseTo(here.requests, 6)
          expect(inRedis.tokens).toBeCloseTo(here.tokens, 6)
          expect(inRedis.heldUntil).toBe(here.heldUntil)
        }
      }
    }))
})
