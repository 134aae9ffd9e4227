/**
 * Circuit breakers shared through Redis (`SharedState.layerRedis`): a breaker
 * one instance opens is skipped by the others until its cooldown passes; then
 * exactly one instance makes the trial (a lock), whose end closes it, reopens
 * it, or gives the trial back, for all; a trial whose holder died is taken
 * over once its lock expires. With Redis down, every instance goes on with
 * its own breakers, and nothing fails; once it is back, they share again.
 *
 * Several `Fallback` layers in this process, each with its own Redis
 * connection, stand for the instances in the finer cases; child processes
 * (test/support/processes/breakerChain.ts) in the cases the issue names.
 * All against a real redis-server and the fake providers over loopback.
 * Time is real here (Redis expires keys on its own clock): cooldowns are
 * short and waits generous.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"
import * as RedisConnection from "../src/internal/redisConnection.js"
import * as SharedBreaker from "../src/internal/sharedBreaker.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { CompletionResult } from "../src/Reply.js"
import * as SharedState from "../src/SharedState.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { type Child, child } from "./support/processes.js"
import { testRedis } from "./support/redis.js"

const hi = [Message.user("Hello?")]
const noRetry = { retry: { maxRetries: 0 } }
const unavailable: FakeProvider.Script = { kind: "status", status: 503, message: "down" }
const healthy: FakeProvider.Script = { kind: "reply", text: "primary" }
const apiKey = "sk-secret-key-never-in-redis-0123456789"

/** Chat requests a server received. */
const chats = (server: FakeProvider.FakeProvider) =>
  server.requests.filter((request) => request.protocol === "chat").length

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Polls `check` until it holds, `attempts` times 25 ms apart (by default for about two seconds). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, attempts = 80) =>
  Effect.gen(function*() {
    for (let i = 0; i < attempts; i++) {
      if (yield* check) return true
      yield* sleep(25)
    }
    return false
  })

/** What happened to the primary on a call: answered it, failed, or was skipped (its breaker open). */
const primaryOn = (result: CompletionResult) => {
  const primary = result.metadata.fallbacks?.[0]
  return primary === undefined ? "answered" : primary.skipped === true ? "skipped" : "failed"
}

/**
 * The fixture: Redis, a primary and a secondary; `instance` builds one more
 * instance of the chain (its breakers open after two failures), `instanceWith`
 * one whose breakers open after `failureThreshold`.
 */
const fixture = (cooldownMillis: number) =>
  Effect.gen(function*() {
    const redis = yield* testRedis
    const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
    primary.setDefault(unavailable)
    secondary.setDefault({ kind: "reply", text: "secondary" })
    const prefix = `t${Math.random().toString(36).slice(2, 8)}:`
    const instanceWith = (failureThreshold: number) =>
      Effect.map(
        Layer.build(
          Fallback.layer([
            {
              layer: Local.layer({ ...noRetry, baseUrl: primary.url, model: "gpu-model", timeout: "5 seconds" }),
              name: "gpu"
            },
            OpenAi.layer({ ...noRetry, baseUrl: `${secondary.url}/v1`, apiKey: Redacted.make(apiKey) })
          ], { circuitBreaker: { failureThreshold, cooldown: cooldownMillis } }).pipe(
            Layer.provide(SharedState.layerRedis({ url: redis.url, keyPrefix: prefix })),
            Layer.provide(NodeHttpClient.layerUndici)
          )
        ),
        (context) => Context.get(context, Llm.Llm)
      )
    const instance = instanceWith(2)
    const inspector = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
    yield* Effect.addFinalizer(() => Effect.sync(() => inspector.disconnect()))
    return { redis, primary, secondary, prefix, instance, instanceWith, inspector }
  })

/** Makes calls on `llm` until one skips the primary (its breaker heard it was opened elsewhere). */
const hearsOpen = (llm: Llm.Llm.Service, attempts?: number) =>
  eventually(Effect.map(llm.complete(hi), (r) => primaryOn(r) === "skipped"), attempts)

/** Opens the primary's breaker on `llm` with two failed calls. */
const opens = (llm: Llm.Llm.Service, primary: FakeProvider.FakeProvider) =>
  Effect.gen(function*() {
    primary.setDefault(unavailable)
    for (let k = 0; k < 2; k++) expect(primaryOn(yield* llm.complete(hi))).toBe("failed")
  })

describe("shared breakers, instances in one process", () => {
  it.live("one instance opens a breaker, the other skips its backend; nothing secret reaches Redis", () =>
    Effect.scoped(Effect.gen(function*() {
      const { inspector, instance, prefix, primary } = yield* fixture(5_000)
      const [a, b] = yield* Effect.all([instance, instance])
      expect(primaryOn(yield* b.complete(hi))).toBe("failed")
      yield* opens(a, primary)
      primary.setDefault(healthy)
      expect(yield* hearsOpen(b)).toBe(true)
      const before = chats(primary)
      const result = yield* b.complete(hi)
      expect(result.content).toBe("secondary")
      expect(result.metadata.fallbacks).toEqual([{ provider: "local", skipped: true }])
      expect(chats(primary)).toBe(before)

      // the keys name the backend (its `name`), and hold no secret
      yield* Effect.promise(() => inspector.connect())
      const keys = (yield* Effect.promise(() => inspector.keys("*"))).sort()
      expect(keys).toEqual([`${prefix}breaker:cooldown:gpu`, `${prefix}breaker:open:gpu`])
      for (const key of keys) {
        expect(key).not.toContain(apiKey)
        expect(yield* Effect.promise(() => inspector.get(key))).toBe("1")
      }
    })))

  it.live("an instance built while a breaker is open takes it as open", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, primary } = yield* fixture(5_000)
      const a = yield* instance
      yield* opens(a, primary)
      const b = yield* instance
      const before = chats(primary)
      expect(primaryOn(yield* b.complete(hi))).toBe("skipped")
      expect(chats(primary)).toBe(before)
    })))

  it.live("after the cooldown exactly one instance makes the trial; its answer closes the breaker for all", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, primary } = yield* fixture(600)
      const all = yield* Effect.all([instance, instance, instance])
      yield* opens(all[0], primary)
      primary.setDefault(healthy)
      for (const other of all.slice(1)) expect(yield* hearsOpen(other)).toBe(true)
      yield* sleep(800)
      primary.setDefault({ kind: "reply", text: "primary", firstEventDelayMs: 300 })
      const before = chats(primary)
      const results = yield* Effect.all(
        all.flatMap((llm) => [llm, llm, llm]).map((llm) => llm.complete(hi)),
        { concurrency: "unbounded" }
      )
      expect(chats(primary) - before).toBe(1)
      expect(results.map((result) => result.content).sort()).toEqual([
        "primary",
        ...Array.from({ length: 8 }, () => "secondary")
      ])
      // closed for all: every instance sends its next call to the primary
      primary.setDefault(healthy)
      for (const llm of all) {
        expect(yield* eventually(Effect.map(llm.complete(hi), (r) => primaryOn(r) === "answered"))).toBe(true)
      }
    })))

  it.live("a failed trial reopens the breaker for all, for another cooldown", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, primary } = yield* fixture(600)
      const [a, b] = yield* Effect.all([instance, instance])
      yield* opens(a, primary)
      yield* sleep(800)
      expect(primaryOn(yield* a.complete(hi))).toBe("failed")
      const before = chats(primary)
      expect(primaryOn(yield* b.complete(hi))).toBe("skipped")
      expect(primaryOn(yield* a.complete(hi))).toBe("skipped")
      expect(chats(primary)).toBe(before)
      // the new cooldown over, the next call (of either) is the trial
      yield* sleep(800)
      primary.setDefault(healthy)
      expect(primaryOn(yield* b.complete(hi))).toBe("answered")
      expect(chats(primary)).toBe(before + 1)
    })))

  it.live("a trial that ends saying nothing (interrupted) gives the trial back: another instance makes the next", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, primary } = yield* fixture(600)
      const [a, b] = yield* Effect.all([instance, instance])
      yield* opens(a, primary)
      yield* sleep(800)
      primary.setDefault({ kind: "hang" })
      const sent = chats(primary) + 1
      const trial = yield* Effect.fork(a.complete(hi))
      yield* Effect.promise(() => primary.waitForRequests(primary.requests.length + 1))
      expect(chats(primary)).toBe(sent)
      // while it runs, the other instance skips
      expect(primaryOn(yield* b.complete(hi))).toBe("skipped")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(trial))).toBe(true)
      // once b hears it was given back (until then it skips), its next call is the trial
      primary.setDefault(healthy)
      expect(yield* eventually(Effect.map(b.complete(hi), (r) => primaryOn(r) === "answered"))).toBe(true)
      expect(chats(primary)).toBe(sent + 1)
    })))

  it.live("a trial whose holder died is taken over once its lock expires", () =>
    Effect.scoped(Effect.gen(function*() {
      const { inspector, instance, prefix, primary } = yield* fixture(600)
      const a = yield* instance
      yield* opens(a, primary)
      yield* sleep(800)
      // another process took the trial's lock, and died holding it
      yield* Effect.promise(() => inspector.connect())
      yield* Effect.promise(() => inspector.set(`${prefix}breaker:trial:gpu`, "dead", "PX", 500))
      primary.setDefault(healthy)
      const before = chats(primary)
      expect(primaryOn(yield* a.complete(hi))).toBe("skipped")
      expect(chats(primary)).toBe(before)
      yield* sleep(700)
      expect(primaryOn(yield* a.complete(hi))).toBe("answered")
      expect(chats(primary)).toBe(before + 1)
    })))

  it.live("an instance built while Redis is down shares its breakers once Redis is up", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, instanceWith, primary, redis } = yield* fixture(5_000)
      yield* Effect.promise(() => redis.stop())
      // a cannot open its own breaker here (its threshold is out of reach), so a call it skips is one it heard of
      const a = yield* instanceWith(1_000)
      expect(primaryOn(yield* a.complete(hi))).toBe("failed")
      yield* Effect.promise(() => redis.start())
      const b = yield* instance
      yield* opens(b, primary)
      // a may come back after b opened it (reconnections back off): it then reads the state. The primary stays
      // down meanwhile: an answer to a call a made before it heard would close the breaker for every process
      // (an answer closes a breaker, README "Fallback"), so a would never hear it open
      expect(yield* hearsOpen(a, 400)).toBe(true)
    })))

  it.live("Redis down: each instance keeps its own breakers and every call answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const { instance, primary, redis } = yield* fixture(600)
      const [a, b] = yield* Effect.all([instance, instance])
      yield* Effect.promise(() => redis.stop())
      yield* opens(a, primary)
      expect(primaryOn(yield* a.complete(hi))).toBe("skipped")
      // not shared: b still tries the primary (and answers from the secondary)
      const result = yield* b.complete(hi)
      expect(result.content).toBe("secondary")
      expect(primaryOn(result)).toBe("failed")
      // a's own trial after its cooldown, decided by itself
      yield* sleep(800)
      primary.setDefault(healthy)
      expect(primaryOn(yield* a.complete(hi))).toBe("answered")
      expect(primaryOn(yield* a.complete(hi))).toBe("answered")
    })))
})

/** The children's answer to `{ calls }`. */
type Calls = ReadonlyArray<{ readonly text: string; readonly primary: "answered" | "failed" | "skipped" }>

const calls = (of: Child, n: number, concurrent = false) =>
  Effect.promise(() => of.ask({ calls: n, concurrent }) as Promise<Calls>)

/** Waits until every child's two Redis connections answer again. */
const sharedAgain = (children: ReadonlyArray<Child>) =>
  eventually(Effect.promise(async () => {
    const statuses = await Promise.all(children.map((of) => of.ask({ status: true })))
    return statuses.every((status) => JSON.stringify(status) === JSON.stringify({ redis: true, subscriber: true }))
  }))

/** Redis, the two fake providers and `n` children running the chain with `cooldownMillis`. */
const processes = (n: number, cooldownMillis: number) =>
  Effect.gen(function*() {
    const redis = yield* testRedis
    const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
    primary.setDefault(unavailable)
    secondary.setDefault({ kind: "reply", text: "secondary" })
    const env = {
      REDIS_URL: redis.url,
      KEY_PREFIX: "p:",
      PRIMARY_URL: primary.url,
      SECONDARY_URL: secondary.url,
      COOLDOWN_MS: String(cooldownMillis)
    }
    const children = yield* Effect.all(Array.from({ length: n }, () => child("breakerChain.ts", env)))
    for (const one of children) {
      expect(yield* Effect.promise(() => one.next())).toMatchObject({ ready: one.process.pid })
    }
    return { redis, primary, children }
  })

describe("shared breakers, across processes", () => {
  it.live("one process opens a breaker, the others skip; after the cooldown exactly one trial across them", () =>
    Effect.scoped(Effect.gen(function*() {
      const { children, primary } = yield* processes(3, 1_000)
      const [a, b, c] = children as [Child, Child, Child]
      expect((yield* calls(a, 2)).map((r) => r.primary)).toEqual(["failed", "failed"])
      expect(chats(primary)).toBe(2)
      expect(yield* calls(b, 2)).toEqual([
        { text: "secondary", primary: "skipped" },
        { text: "secondary", primary: "skipped" }
      ])
      expect((yield* calls(c, 1))[0]!.primary).toBe("skipped")
      expect(chats(primary)).toBe(2)

      yield* sleep(1_300)
      // the trial takes a while: every process asks meanwhile, three calls each at once
      primary.setDefault({ kind: "reply", text: "primary", firstEventDelayMs: 300 })
      const results = (yield* Effect.all(children.map((one) => calls(one, 3, true)), { concurrency: "unbounded" }))
        .flat()
      expect(chats(primary)).toBe(3)
      expect(results.filter((r) => r.primary === "answered")).toEqual([{ text: "primary", primary: "answered" }])
      expect(results.filter((r) => r.primary === "skipped")).toHaveLength(8)

      // its answer closed the breaker for every process
      primary.setDefault(healthy)
      for (const one of children) expect(yield* calls(one, 1)).toEqual([{ text: "primary", primary: "answered" }])
      expect(chats(primary)).toBe(6)
    })))

  it.live("Redis stopped mid-run: calls go on with each process's own breakers; restarted: shared again", () =>
    Effect.scoped(Effect.gen(function*() {
      const { children, primary, redis } = yield* processes(2, 600)
      const [a, b] = children as [Child, Child]
      yield* calls(a, 2)
      expect((yield* calls(b, 1))[0]!.primary).toBe("skipped")

      yield* Effect.promise(() => redis.stop())
      // the cooldown over, each makes its own trial: the primary is back
      yield* sleep(800)
      primary.setDefault(healthy)
      expect(yield* calls(a, 2)).toEqual([
        { text: "primary", primary: "answered" },
        { text: "primary", primary: "answered" }
      ])
      expect(yield* calls(b, 1)).toEqual([{ text: "primary", primary: "answered" }])
      // a opens its breaker again; b is not told, and its calls still answer
      primary.setDefault(unavailable)
      expect((yield* calls(a, 3)).map((r) => [r.text, r.primary])).toEqual([
        ["secondary", "failed"],
        ["secondary", "failed"],
        ["secondary", "skipped"]
      ])
      expect(yield* calls(b, 1)).toEqual([{ text: "secondary", primary: "failed" }])

      yield* Effect.promise(() => redis.start())
      expect(yield* sharedAgain(children)).toBe(true)
      // both closed again (a by its trial), then b opens the breaker: a hears it
      yield* sleep(800)
      primary.setDefault(healthy)
      expect(yield* calls(a, 1)).toEqual([{ text: "primary", primary: "answered" }])
      expect(yield* calls(b, 1)).toEqual([{ text: "primary", primary: "answered" }])
      primary.setDefault(unavailable)
      expect((yield* calls(b, 2)).map((r) => r.primary)).toEqual(["failed", "failed"])
      const before = chats(primary)
      expect(yield* calls(a, 1)).toEqual([{ text: "secondary", primary: "skipped" }])
      expect(chats(primary)).toBe(before)
    })))
})

describe("the shared breakers' reconnection", () => {
  it.live("reads the state again after Redis is back, until it answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* testRedis
      const connection = yield* RedisConnection.make({ url: redis.url, keyPrefix: "re:" })
      const breakers = yield* SharedBreaker.make(connection)
      // the first reads after the reconnection find the reading connection still down
      let reads = 0
      breakers.breaker("gpu", 100, { heard: () => undefined, resync: Effect.sync(() => ++reads > 3) })
      yield* breakers.start
      expect(reads).toBe(1)
      yield* Effect.promise(() => redis.stop())
      yield* Effect.promise(() => redis.start())
      expect(yield* eventually(Effect.sync(() => reads >= 4), 200)).toBe(true)
      yield* sleep(600)
      expect(reads).toBe(4)
    })))
})

describe("the shared breaker's lock", () => {
  const listener: SharedBreaker.Listener = { heard: () => undefined, resync: Effect.succeed(true) }

  it.live("is kept while its trial runs, and expires when its holder stops renewing it", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* testRedis
      const connection = yield* RedisConnection.make({ url: redis.url, keyPrefix: "lock:" })
      const [one, two] = yield* Effect.all([
        SharedBreaker.make(connection, { lockMillis: 300 }),
        SharedBreaker.make(connection, { lockMillis: 300 })
      ])
      const a = one.breaker("gpu", 100, listener)
      const b = two.breaker("gpu", 100, listener)
      expect(yield* a.open(undefined)).toEqual(Option.some(100))
      // opened already: the second opener gets what is left of the first one's cooldown
      const left = yield* b.open(undefined)
      expect(Option.getOrThrow(left)).toBeLessThanOrEqual(100)
      expect(yield* b.trial).toMatchObject(Option.some({ _tag: "Open" }))
      yield* sleep(150)
      const mine = Option.getOrThrow(yield* a.trial)
      if (mine._tag !== "Mine") throw new Error(`expected the trial, got ${mine._tag}`)
      const stop = a.hold(mine.token)
      // renewed past its 300 ms: the other still may not make the trial
      yield* sleep(700)
      expect(yield* b.trial).toMatchObject(Option.some({ _tag: "Trying" }))
      stop()
      yield* sleep(500)
      expect(yield* b.trial).toMatchObject(Option.some({ _tag: "Mine" }))
    })))
})
