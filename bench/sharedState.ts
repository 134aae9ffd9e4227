/**
 * What sharing the circuit breakers through Redis costs a call, next to
 * keeping them in memory: µs per `complete` through a `Fallback` of two
 * in-process backends (`ScriptedLlm`: no network, so the breaker's own cost
 * shows), its breakers in memory and in a real Redis (`redis-server` on
 * loopback, started here), with the primary's breaker closed (the primary
 * answers) and open (the primary is skipped), and what one change of state
 * costs the call that makes it (the open and close scripts, one round trip
 * each), next to a bare `PING`.
 *
 *   npx tsx bench/sharedState.ts [--calls N]
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { performance } from "node:perf_hooks"
import { LlmConnectionError } from "../src/errors.js"
import * as RedisConnection from "../src/internal/redisConnection.js"
import * as SharedBreaker from "../src/internal/sharedBreaker.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as SharedState from "../src/SharedState.js"
import * as ScriptedLlm from "../src/testing/ScriptedLlm.js"
import { testRedis } from "../test/support/redis.js"

const argument = (name: string) => {
  const at = process.argv.indexOf(name)
  return at === -1 ? undefined : process.argv[at + 1]
}
const calls = Number(argument("--calls") ?? 10_000)
const hi = [Message.user("Hello?")]
const down = new LlmConnectionError({ provider: "scripted", model: "m", message: "down", reason: "reset" })

/** µs per call of `call`, after a warm-up of a fifth as many. */
const perCall = <E, R>(call: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < calls / 5; i++) yield* call
    const start = performance.now()
    for (let i = 0; i < calls; i++) yield* call
    return ((performance.now() - start) * 1000) / calls
  })

/**
 * A chain of a primary (answering, or failing until its breaker opens) and a
 * secondary, over `state`: both answer from memory (one reply made once), so
 * that the breaker's own cost shows.
 */
const chain = (primaryAnswers: boolean, state: Layer.Layer<SharedState.SharedState>) =>
  Effect.gen(function*() {
    const scripted = yield* ScriptedLlm.make(() => ScriptedLlm.reply("ok"))
    const result = yield* scripted.llm.complete(hi)
    const answering: Llm.Llm.Service = { ...scripted.llm, complete: () => Effect.succeed(result) }
    const failing: Llm.Llm.Service = { ...scripted.llm, complete: () => Effect.fail(down) }
    const context = yield* Layer.build(
      Layer.provide(
        Fallback.layer([
          Layer.succeed(Llm.Llm, primaryAnswers ? answering : failing),
          Layer.succeed(Llm.Llm, answering)
        ], { circuitBreaker: { failureThreshold: 1, cooldown: "1 hour" } }),
        state
      )
    )
    const llm = Context.get(context, Llm.Llm)
    // opens the primary's breaker when it fails
    yield* Effect.ignore(llm.complete(hi))
    return llm
  })

/** The median of `values`. */
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const program = Effect.scoped(Effect.gen(function*() {
  const redis = yield* testRedis
  const shared = SharedState.layerRedis({ url: redis.url, keyPrefix: "bench:" })
  const rows: Array<[string, number, number]> = []
  for (
    const [name, answers] of [["breaker closed (the primary answers)", true], [
      "breaker open (the primary skipped)",
      false
    ]] as const
  ) {
    const inMemory = yield* chain(answers, SharedState.layerMemory)
    const inRedis = yield* chain(answers, shared)
    // interleaved repetitions, so that the machine's drift falls on both alike
    const memory: Array<number> = []
    const redisBacked: Array<number> = []
    for (let rep = 0; rep < 5; rep++) {
      memory.push(yield* perCall(inMemory.complete(hi)))
      redisBacked.push(yield* perCall(inRedis.complete(hi)))
    }
    rows.push([name, median(memory), median(redisBacked)])
  }

  // one change of state: the open script and the close script, each a round trip
  const connection = yield* RedisConnection.make({ url: redis.url, keyPrefix: "bench:" })
  const breakers = yield* SharedBreaker.make(connection)
  const breaker = breakers.breaker("gpu", 60_000, { heard: () => undefined, resync: Effect.succeed(true) })
  const changes = Math.max(1, Math.floor(calls / 10))
  const ping = connection.run((client) => client.ping())
  const timed = (effect: Effect.Effect<unknown>) =>
    Effect.gen(function*() {
      for (let i = 0; i < changes / 5; i++) yield* effect
      const start = performance.now()
      for (let i = 0; i < changes; i++) yield* effect
      return ((performance.now() - start) * 1000) / changes
    })
  const pingMicros = yield* timed(ping)
  const changeMicros = yield* timed(Effect.zipRight(breaker.open(undefined), breaker.close))
  const check = yield* breaker.read
  if (Option.isNone(check)) throw new Error("Redis did not answer")

  console.log(`${calls} calls per repetition, median of 5 interleaved; Node ${process.version}\n`)
  console.log("| per call | memory (µs) | Redis (µs) | extra (µs) |")
  console.log("|---|---|---|---|")
  for (const [name, memory, inRedis] of rows) {
    console.log(`| ${name} | ${memory.toFixed(2)} | ${inRedis.toFixed(2)} | ${(inRedis - memory).toFixed(2)} |`)
  }
  console.log(`\n| per change of state (Redis on loopback) | µs |\n|---|---|`)
  console.log(`| PING round trip (reference) | ${pingMicros.toFixed(1)} |`)
  console.log(`| open, then close (two scripts, each with its PUBLISH) | ${changeMicros.toFixed(1)} |`)
}))

Effect.runPromise(program).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
