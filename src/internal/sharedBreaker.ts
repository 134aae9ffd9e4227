/** Circuit breakers shared through Redis: the open state and its cooldown, the one trial's lock, and the changes every process hears. */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import type { RedisConnection } from "./redisConnection.js"

/**
 * What Redis (or another process) says of a breaker: closed; open, cooling
 * down for `remaining` more milliseconds (0: its cooldown is over and it
 * awaits its trial); or trying, another process holding the trial for at
 * most `remaining` more milliseconds (after that its holder is taken for dead).
 */
export type Remote =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Open"; readonly remaining: number }
  | { readonly _tag: "Trying"; readonly remaining: number }

/** The answer to asking for the trial: this process makes it (holding the lock `token`), or what the breaker is. */
export type Admission = { readonly _tag: "Mine"; readonly token: string } | Remote

/** One backend's breaker as Redis holds it. Every command answers `None` while Redis is down. */
export interface SharedBreaker {
  /** Asks for the trial once the cooldown is over (`SET NX PX` of the trial lock, in one script with the state read). */
  readonly trial: Effect.Effect<Option.Option<Admission>>
  /**
   * Opens it for every process (after a trial, `token` the lock it held) and
   * answers the cooldown that is left: all of it, or, when another process
   * opened it first, what is left of that one's.
   */
  readonly open: (token: string | undefined) => Effect.Effect<Option.Option<number>>
  /** Closes it for every process. */
  readonly close: Effect.Effect<Option.Option<void>>
  /** Gives the trial lock `token` back without deciding: the next call of any process may make the trial. */
  readonly untried: (token: string) => Effect.Effect<Option.Option<void>>
  /** Keeps the lock `token` while its trial runs (its expiry renewed); the function returned stops that. */
  readonly hold: (token: string) => () => void
  /** What Redis holds of it now. */
  readonly read: Effect.Effect<Option.Option<Remote>>
}

/**
 * What a breaker hears from the others: their changes, and that it should
 * read its state again (Redis is back), which answers whether Redis answered.
 */
export interface Listener {
  readonly heard: (remote: Remote) => void
  readonly resync: Effect.Effect<boolean>
}

/** The breakers of one `Fallback` over one connection. */
export interface SharedBreakers {
  /** The breaker named `name` (its key), with its cooldown, telling `listener` what the other processes do. */
  readonly breaker: (name: string, cooldownMillis: number, listener: Listener) => SharedBreaker
  /**
   * Subscribes to the changes (waiting for the subscription at most a
   * moment), and reads every breaker's state once; the function returned
   * unsubscribes.
   */
  readonly start: Effect.Effect<() => void>
}

/** How long a trial's lock lasts without renewal (default): the time after which a process that died mid-trial is given up on. */
const defaultLockMillis = 5_000

/** A change as published: who made it, to which breaker, and what it is now (`Closed`, `Open` with its cooldown, or `Untried`). */
interface Change {
  readonly from: string
  readonly name: string
  readonly state: "closed" | "open" | "untried"
  readonly remaining?: number
}

// KEYS: open, cooldown, trial; ARGV: token, lock ms
const trialScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'closed', 0} end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {'open', left} end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'mine', 0} end
return {'trying', redis.call('PTTL', KEYS[3])}`

// KEYS: open, cooldown, trial; ARGV: cooldown ms, token ('' unless after a trial), channel, message
const openScript = `
if ARGV[2] == '' and redis.call('EXISTS', KEYS[1]) == 1 then
  local left = redis.call('PTTL', KEYS[2])
  if left < 0 then left = 0 end
  return left
end
redis.call('SET', KEYS[1], '1')
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return tonumber(ARGV[1])`

// KEYS: open, cooldown, trial; ARGV: channel, message
const closeScript = `
local was = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if was > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return was`

// KEYS: trial; ARGV: token, channel, message
const untriedScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0`

// KEYS: trial; ARGV: token, lock ms
const holdScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

// KEYS: open, cooldown, trial
const readScript = `
return {redis.call('EXISTS', KEYS[1]), redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3])}`

/** A duration Redis answered (PTTL is negative for a key without expiry or gone): 0 unless positive. */
const ms = (value: unknown): number => (typeof value === "number" && value > 0 ? value : 0)

/** Runs a script (breakers change rarely: it is sent whole, no script cache to keep). */
const evaluate = (client: Redis, script: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
  client.eval(script, keys.length, ...keys, ...args)

/** A published change, or undefined when the message is not one. */
const parseChange = (message: string): Change | undefined => {
  try {
    const parsed: unknown = JSON.parse(message)
    if (typeof parsed !== "object" || parsed === null) return undefined
    const change = parsed as Partial<Change>
    return typeof change.from === "string" && typeof change.name === "string" &&
        (change.state === "closed" || change.state === "open" || change.state === "untried")
      ? change as Change
      : undefined
  } catch {
    return undefined
  }
}

/**
 * The breakers of one `Fallback` over `connection`, as one participant (its
 * own id, so that it ignores its own changes when it hears them back).
 * Keys: `breaker:open:<name>` (open until a trial closes it),
 * `breaker:cooldown:<name>` (expires with the cooldown),
 * `breaker:trial:<name>` (the trial's lock); changes are published on `breaker`.
 */
export const make = (
  connection: RedisConnection,
  options: { readonly lockMillis?: number | undefined } = {}
): Effect.Effect<SharedBreakers> =>
  Effect.map(Effect.runtime<never>(), (runtime) => {
    const lockMillis = options.lockMillis ?? defaultLockMillis
    const id = randomUUID()
    const channel = connection.key("breaker")
    const listeners = new Map<string, Listener>()
    let trials = 0
    const fork = Runtime.runFork(runtime)

    const breaker = (name: string, cooldownMillis: number, listener: Listener): SharedBreaker => {
      listeners.set(name, listener)
      const keys = [
        connection.key("breaker", "open", name),
        connection.key("breaker", "cooldown", name),
        connection.key("breaker", "trial", name)
      ]
      const change = (state: Change["state"], remaining?: number) =>
        JSON.stringify({ from: id, name, state, ...(remaining === undefined ? {} : { remaining }) } satisfies Change)
      return {
        trial: Effect.suspend(() => {
          const token = `${id}:${++trials}`
          return Effect.map(
            connection.run((client) => evaluate(client, trialScript, keys, [token, lockMillis])),
            Option.map((answer): Admission => {
              const [tag, left] = answer as [string, number]
              if (tag === "mine") return { _tag: "Mine", token }
              if (tag === "open") return { _tag: "Open", remaining: ms(left) }
              // a lock with no expiry cannot be left by this code; treated as one about to expire
              if (tag === "trying") return { _tag: "Trying", remaining: ms(left) }
              return { _tag: "Closed" }
            })
          )
        }),
        open: (token) =>
          Effect.map(
            connection.run((client) =>
              evaluate(client, openScript, keys, [
                cooldownMillis,
                token ?? "",
                channel,
                change("open", cooldownMillis)
              ])
            ),
            Option.map(ms)
          ),
        close: Effect.map(
          connection.run((client) => evaluate(client, closeScript, keys, [channel, change("closed")])),
          Option.asVoid
        ),
        untried: (token) =>
          Effect.map(
            connection.run((client) =>
              evaluate(client, untriedScript, [keys[2]!], [token, channel, change("untried")])
            ),
            Option.asVoid
          ),
        hold: (token) => {
          const timer = setInterval(() => {
            fork(connection.run((client) => evaluate(client, holdScript, [keys[2]!], [token, lockMillis])))
          }, lockMillis / 3)
          timer.unref()
          return () => clearInterval(timer)
        },
        read: Effect.map(
          connection.run((client) => evaluate(client, readScript, keys, [])),
          Option.map((answer): Remote => {
            const [open, cooling, trying] = answer as [number, number, number]
            if (open === 0) return { _tag: "Closed" }
            if (cooling > 0) return { _tag: "Open", remaining: cooling }
            if (trying > 0) return { _tag: "Trying", remaining: trying }
            return { _tag: "Open", remaining: 0 }
          })
        )
      }
    }

    const onMessage = (from: string, message: string) => {
      if (from !== channel) return
      const heard = parseChange(message)
      if (heard === undefined || heard.from === id) return
      const listener = listeners.get(heard.name)
      if (listener === undefined) return
      switch (heard.state) {
        case "closed":
          return listener.heard({ _tag: "Closed" })
        case "open":
          return listener.heard({ _tag: "Open", remaining: ms(heard.remaining) })
        case "untried":
          return listener.heard({ _tag: "Open", remaining: 0 })
      }
    }
    // the breakers of now, each time (not an iterator taken once)
    const resync = Effect.suspend(() =>
      Effect.map(
        Effect.forEach([...listeners.values()], (listener) => listener.resync, { concurrency: "unbounded" }),
        (read) => read.every((answered) => answered)
      )
    )
    /** A pause in real time (Redis reconnects on its own clock, not the layer's). */
    const pause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms).unref()))
    /**
     * After a reconnection: the subscriber may be back before the connection
     * that reads, so the state is read again until Redis answers (for at most
     * about ten seconds; a later reconnection starts again).
     */
    const resyncAfterReconnection = (attempt: number): Effect.Effect<void> =>
      Effect.flatMap(
        resync,
        (read) =>
          read || attempt >= 40 ? Effect.void : Effect.zipRight(pause(250), resyncAfterReconnection(attempt + 1))
      )

    const start = Effect.suspend(() => {
      const subscriber = connection.subscriber()
      let started = false
      let first: (() => void) | undefined
      const subscribedOnce = new Promise<void>((resolve) => (first = resolve))
      // subscribed again on every (re)connection: changes published while it was away are lost, so each breaker
      // reads its state again (the first time, `start` reads them itself)
      const onReady = () => {
        subscriber.subscribe(channel).then(() => {
          first?.()
          if (started) fork(resyncAfterReconnection(0))
        }, () => first?.())
      }
      const onError = () => first?.()
      subscriber.on("message", onMessage)
      subscriber.on("ready", onReady)
      subscriber.once("error", onError)
      if (subscriber.status === "ready") onReady()
      const stop = () => {
        subscriber.off("message", onMessage)
        subscriber.off("ready", onReady)
        subscriber.off("error", onError)
        listeners.clear()
      }
      // the first subscription is awaited (until it is made, fails, or a second passes), then the state read,
      // so that the calls right after the layer is built know what the other processes did and hear what they do
      const subscribing = Effect.promise(() =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1_000)
          subscribedOnce.then(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      )
      return subscribing.pipe(
        Effect.zipRight(Effect.sync(() => (started = true))),
        Effect.zipRight(Effect.asVoid(resync)),
        Effect.as(stop)
      )
    })

    return { breaker, start } satisfies SharedBreakers
  })
