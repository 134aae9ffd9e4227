/**
 * The shared-state service over a real Redis server (test/support/redis.ts):
 * memory is the default, a Redis connection answers commands, and Redis
 * going down makes commands answer `None` (the caller's cue to use local
 * state) with one warning per outage and a note when it is back, never a
 * failure and never a credential in a message.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as RedisConnection from "../src/internal/redisConnection.js"
import * as SharedState from "../src/SharedState.js"
import { child } from "./support/processes.js"
import { testRedis } from "./support/redis.js"

/** The log lines written while `effect` runs. */
const logged = <A, E, R>(effect: (lines: Array<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return Effect.provide(effect(lines), Logger.replace(Logger.defaultLogger, logger))
}

/** Polls `check` until it holds (Redis reconnects in the background). */
const eventually = (check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (yield* check) return true
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 25)))
    }
    return false
  })

describe("SharedState", () => {
  it.effect("is memory when nothing is provided", () =>
    Effect.gen(function*() {
      expect((yield* SharedState.current)._tag).toBe("Memory")
      const provided = yield* Effect.provide(SharedState.current, SharedState.layerMemory)
      expect(provided._tag).toBe("Memory")
    }))

  it.scoped("sends commands to Redis, under the key prefix", () =>
    Effect.gen(function*() {
      const redis = yield* testRedis
      const built = yield* Layer.build(SharedState.layerRedis({ url: redis.url, keyPrefix: "t1:" }))
      const state = Context.get(built, SharedState.SharedState)
      if (state._tag !== "Redis") throw new Error("expected Redis")
      const { connection } = state
      expect(connection.key("breaker", "local")).toBe("t1:breaker:local")
      expect(yield* eventually(Effect.map(connection.run((c) => c.ping()), Option.isSome))).toBe(true)
      yield* connection.run((c) => c.set(connection.key("x"), "1"))
      const read = yield* connection.run((c) => c.get("t1:x"))
      expect(read).toEqual(Option.some("1"))
      expect(connection.address).toBe(`127.0.0.1:${redis.port}`)
    }))

  it.scoped("answers None while Redis is down, warns once per outage, and says when it is back", () =>
    logged((lines) =>
      Effect.gen(function*() {
        const redis = yield* testRedis
        const connection = yield* RedisConnection.make({ url: redis.url })
        expect(yield* eventually(Effect.map(connection.run((c) => c.ping()), Option.isSome))).toBe(true)
        expect(lines).toEqual([])

        yield* Effect.promise(() => redis.stop())
        expect(yield* eventually(Effect.map(connection.run((c) => c.ping()), Option.isNone))).toBe(true)
        expect(yield* connection.run((c) => c.get("k"))).toEqual(Option.none())
        expect(connection.available()).toBe(false)
        // reconnect attempts keep failing while it is down: still one warning
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))
        expect(yield* connection.run((c) => c.get("k"))).toEqual(Option.none())
        const warnings = lines.filter((line) => line.startsWith("WARN"))
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toContain(`Redis at 127.0.0.1:${redis.port} is unavailable`)

        yield* Effect.promise(() => redis.start())
        expect(yield* eventually(Effect.map(connection.run((c) => c.set("k", "v")), Option.isSome))).toBe(true)
        expect(yield* connection.run((c) => c.get("k"))).toEqual(Option.some("v"))
        expect(connection.available()).toBe(true)
        expect(lines.filter((line) => line.startsWith("INFO"))).toEqual([
          `INFO effect-llm: Redis at 127.0.0.1:${redis.port} is back; state is shared again`
        ])

        // a second outage warns again
        yield* Effect.promise(() => redis.stop())
        expect(yield* eventually(Effect.map(connection.run((c) => c.ping()), Option.isNone))).toBe(true)
        expect(lines.filter((line) => line.startsWith("WARN"))).toHaveLength(2)
      })
    ))

  it.scoped("never puts a password in a message", () =>
    logged((lines) =>
      Effect.gen(function*() {
        const redis = yield* testRedis
        yield* Effect.promise(() => redis.stop())
        const secret = "s3cret-redis-password"
        const connection = yield* RedisConnection.make({
          url: Redacted.make(`redis://user:${secret}@127.0.0.1:${redis.port}`),
          password: Redacted.make("another-secret-pw")
        })
        expect(yield* eventually(Effect.map(connection.run((c) => c.ping()), Option.isNone))).toBe(true)
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
        expect(lines.length).toBeGreaterThan(0)
        for (const line of lines) {
          expect(line).not.toContain(secret)
          expect(line).not.toContain("another-secret-pw")
        }
        expect(connection.address).toBe(`127.0.0.1:${redis.port}`)
      })
    ))
})

describe("the multi-process harness", () => {
  it.scoped("runs a child that answers commands, and kills it with the scope", () =>
    Effect.gen(function*() {
      const one = yield* child("echo.ts", { ECHO_TAG: "a" })
      const two = yield* child("echo.ts", { ECHO_TAG: "b" })
      const [ready1, ready2] = yield* Effect.promise(() => Promise.all([one.next(), two.next()]))
      expect(ready1).toMatchObject({ env: "a" })
      expect(ready2).toMatchObject({ env: "b" })
      const answer = yield* Effect.promise(() => one.ask({ n: 1 }))
      expect(answer).toEqual({ pid: one.process.pid, command: { n: 1 } })
      expect(one.process.pid).not.toBe(two.process.pid)
      two.process.kill("SIGKILL")
      expect(yield* Effect.promise(() => two.exited)).toBe("SIGKILL")
      const failed = yield* Effect.promise(() => two.next().then(() => "answered", () => "rejected"))
      expect(failed).toBe("rejected")
    }))
})
