/**
 * Fallback's defaults and bookkeeping at their edges (issue 13, mutation
 * testing): the default breaker (3 failures, 30 s), `circuitBreaker: false`,
 * the record of the backends tried in `metadata.fallbacks` of results and of a
 * stream's `Finish`, the warning logged on each fallback, the chain's name,
 * and an empty chain. Backends are `ScriptedLlm`s (effect-llm/testing) on the
 * `TestClock`; the behaviour over HTTP is in Fallback.test.ts and breaker.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { LlmAuthenticationError, LlmProviderError } from "../src/errors.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"

const hi = [Message.user("Hi")]
const down = (provider: string) => new LlmProviderError({ provider, model: "m", message: `${provider} is down` })

/** A backend answering every call with `step`. */
const backend = (provider: string, step: ScriptedLlm.Step) =>
  ScriptedLlm.make(() => step, { provider, model: `${provider}-model` })

/** How many calls reached a backend. */
const count = (calls: Effect.Effect<ReadonlyArray<ScriptedLlm.RecordedCall>>) => Effect.map(calls, (c) => c.length)

describe("Fallback defaults", () => {
  it.effect("the breaker opens after 3 consecutive failures and lets a trial through after 30 seconds", () =>
    Effect.gen(function*() {
      const primary = yield* backend("primary", ScriptedLlm.fail(down("primary")))
      const secondary = yield* backend("secondary", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm])
      for (let i = 0; i < 3; i++) expect((yield* llm.complete(hi)).content).toBe("ok")
      expect(yield* count(primary.calls)).toBe(3)
      const skipped = yield* llm.complete(hi)
      expect(skipped.metadata.fallbacks).toEqual([{ provider: "primary", skipped: true }])
      expect(yield* count(primary.calls)).toBe(3)
      yield* TestClock.adjust("29999 millis")
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(3)
      yield* TestClock.adjust("1 millis")
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(4)
    }))

  it.effect("a success resets the count of consecutive failures", () =>
    Effect.gen(function*() {
      let failing = true
      const primary = yield* ScriptedLlm.make(
        () => failing ? ScriptedLlm.fail(down("primary")) : ScriptedLlm.reply("primary"),
        {
          provider: "primary"
        }
      )
      const secondary = yield* backend("secondary", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm])
      yield* llm.complete(hi)
      yield* llm.complete(hi)
      failing = false
      expect((yield* llm.complete(hi)).content).toBe("primary")
      failing = true
      yield* llm.complete(hi)
      yield* llm.complete(hi)
      // two failures since the success: still closed
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(6)
    }))

  it.effect("circuitBreaker: false never skips a backend", () =>
    Effect.gen(function*() {
      const primary = yield* backend("primary", ScriptedLlm.fail(down("primary")))
      const secondary = yield* backend("secondary", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], { circuitBreaker: false })
      for (let i = 0; i < 10; i++) yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(10)
    }))

  it.effect("a breaker with a threshold of 1 and a cooldown opens on the first failure", () =>
    Effect.gen(function*() {
      const primary = yield* backend("primary", ScriptedLlm.fail(down("primary")))
      const secondary = yield* backend("secondary", ScriptedLlm.reply("ok"))
      const llm = yield* Fallback.make([primary.llm, secondary.llm], {
        circuitBreaker: { failureThreshold: 1, cooldown: "5 seconds" }
      })
      yield* llm.complete(hi)
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(1)
      yield* TestClock.adjust("5 seconds")
      yield* llm.complete(hi)
      expect(yield* count(primary.calls)).toBe(2)
    }))

  it.effect("is named after its first backend, and an empty chain is a defect", () =>
    Effect.gen(function*() {
      const primary = yield* backend("primary", ScriptedLlm.reply("a"))
      const secondary = yield* backend("secondary", ScriptedLlm.reply("b"))
      const llm = yield* Fallback.make([{ llm: primary.llm }, secondary.llm])
      expect([llm.provider, llm.model]).toEqual(["primary", "primary-model"])
      const exit = yield* Effect.exit(Fallback.make([]))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("Fallback.make needs at least one backend")
    }))
})

describe("the record of the backends tried", () => {
  it.effect("a result answered first has no fallbacks; one answered later names each failure in order", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.fail(down("b")))
      const c = yield* backend("c", ScriptedLlm.reply("from c"))
      const direct = yield* (yield* Fallback.make([c.llm, a.llm])).complete(hi)
      expect(direct.metadata.fallbacks).toBeUndefined()
      const result = yield* (yield* Fallback.make([a.llm, b.llm, c.llm])).complete(hi)
      expect(result.content).toBe("from c")
      expect(result.metadata.fallbacks?.map((f) => [f.provider, f.error?.message, f.skipped])).toEqual([
        ["a", "a is down", undefined],
        ["b", "b is down", undefined]
      ])
      expect(result.metadata.provider).toBe("c")
    }))

  it.effect("a stream's Finish carries the same record, and is passed through untouched when nothing failed", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.reply("from b"))
      const fell = yield* LlmStream.collect((yield* Fallback.make([a.llm, b.llm])).stream(hi))
      expect(fell.content).toBe("from b")
      expect(fell.finishReason).toBe("stop")
      expect(fell.metadata.fallbacks?.map((f) => [f.provider, f.error?._tag])).toEqual([["a", "LlmProviderError"]])
      const direct = yield* LlmStream.collect((yield* Fallback.make([b.llm, a.llm])).stream(hi))
      expect(direct.metadata.fallbacks).toBeUndefined()
      expect(direct.metadata.provider).toBe("b")
    }))

  it.effect("the last backend's error is the call's, and a final error stops the chain at once", () =>
    Effect.gen(function*() {
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.fail(down("b")))
      const error = yield* Effect.flip((yield* Fallback.make([a.llm, b.llm])).complete(hi))
      expect(error.message).toBe("b is down")
      const refused = new LlmAuthenticationError({ provider: "x", model: "m", message: "bad key" })
      const x = yield* backend("x", ScriptedLlm.fail(refused))
      const y = yield* backend("y", ScriptedLlm.reply("y"))
      const chain = yield* Fallback.make([x.llm, y.llm])
      const failed = yield* Effect.flip(chain.complete(hi))
      expect([failed._tag, failed.message]).toEqual(["LlmAuthenticationError", "bad key"])
      expect((yield* Effect.flip(Stream.runDrain(chain.stream(hi))))._tag).toBe("LlmAuthenticationError")
      expect(yield* count(y.calls)).toBe(0)
    }))
})

describe("the warning logged on a fallback", () => {
  it.effect("names the backend, its error and the next backend", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ annotations, message }) => {
        logs.push(`${String(message)} ${JSON.stringify(Object.fromEntries(annotations))}`)
      })
      const a = yield* backend("a", ScriptedLlm.fail(down("a")))
      const b = yield* backend("b", ScriptedLlm.reply("b"))
      const llm = yield* Fallback.make([a.llm, b.llm])
      yield* llm.complete(hi).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* Stream.runDrain(llm.stream(hi)).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const line =
        "effect-llm: a failed (LlmProviderError: a is down); falling back to b {\"llm.fallback.from\":\"a\",\"llm.fallback.to\":\"b\"}"
      expect(logs).toEqual([line, line])
    }))
})
