/** A backend's rate limits (requests and tokens a minute, and a 429's Retry-After), in this process or shared through Redis. */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import { createHash } from "node:crypto"
import { LlmRateLimitError, type RateLimitKind } from "../errors.js"
import type { RateLimitOptions } from "../Provider.js"
import type * as SharedState from "../SharedState.js"
import type { Usage } from "../Usage.js"
import type { ErrorContext } from "./errorFactory.js"
import type { RedisConnection } from "./redisConnection.js"
import { hasLineBreak } from "./validate.js"

export type {
  /** A backend's budgets, as a layer's `rateLimit` option sets them. */
  RateLimitOptions
} from "../Provider.js"

/** The first 16 hex digits of `secret`'s SHA-256: how an API key is told apart in Redis keys, never the key itself. */
export const keyFingerprint = (secret: string): string => createHash("sha256").update(secret).digest("hex").slice(0, 16)

/** Why `options` cannot be used, naming the option; undefined when they can. */
export const problem = (options: RateLimitOptions | undefined): string | undefined => {
  if (options === undefined) return undefined
  for (const option of ["requestsPerMinute", "tokensPerMinute"] as const) {
    const value = options[option]
    if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value > 0)) {
      return `the rateLimit.${option} option must be a positive number, got ${JSON.stringify(value) ?? String(value)}`
    }
  }
  const { name } = options
  if (name !== undefined && (typeof name !== "string" || name === "" || hasLineBreak(name))) {
    return "the rateLimit.name option must be text on one line"
  }
  return undefined
}

/** The budgets of one bucket, a minute's worth each; 0 is no limit. */
export interface Budget {
  readonly requestsPerMinute: number
  readonly tokensPerMinute: number
}

/**
 * One bucket: what is left of each budget at `at` (clock millis; negative
 * when waiting calls have reserved ahead, or a reply used more tokens than
 * estimated), and until when a 429's Retry-After holds it.
 */
export interface Bucket {
  requests: number
  tokens: number
  at: number
  heldUntil: number
}

/**
 * What the bucket answers a request: `0` granted, after waiting `wait`
 * millis (the budget is reserved); `1` refused, the wait being longer than
 * the caller may wait (`limit`: which budget); `2` held by a Retry-After for
 * `wait` more millis. The Lua script answers the same triple.
 */
export type Answer = readonly [status: 0 | 1 | 2, wait: number, limit: 0 | 1 | 2]

const minute = 60_000

/** A wait in whole millis, rounded up (past a rounding error: the script answers the same). */
const wholeMillis = (millis: number): number => Math.max(0, Math.ceil(millis - 1e-6))

/** `bucket` (a full one when there is none) refilled up to `now`; a clock behind the bucket's refills nothing. */
export const refill = (bucket: Bucket | undefined, now: number, budget: Budget): Bucket => {
  if (bucket === undefined) {
    return { requests: budget.requestsPerMinute, tokens: budget.tokensPerMinute, at: now, heldUntil: 0 }
  }
  const elapsed = Math.max(0, now - bucket.at)
  return {
    requests: Math.min(budget.requestsPerMinute, bucket.requests + elapsed * budget.requestsPerMinute / minute),
    tokens: Math.min(budget.tokensPerMinute, bucket.tokens + elapsed * budget.tokensPerMinute / minute),
    at: Math.max(now, bucket.at),
    heldUntil: bucket.heldUntil
  }
}

/**
 * Takes one request of `need` tokens from `bucket` (refilled to `now`) if
 * the wait for it is at most `maxWait`; `need` is capped at a minute's
 * tokens, so that a request larger than the budget waits for a full bucket
 * rather than forever. Returns the new bucket and the answer.
 */
export const take = (
  bucket: Bucket | undefined,
  now: number,
  budget: Budget,
  need: number,
  maxWait: number
): readonly [Bucket, Answer] => {
  const filled = refill(bucket, now, budget)
  if (filled.heldUntil > now) return [filled, [2, Math.ceil(filled.heldUntil - now), 0]]
  const { requestsPerMinute: rpm, tokensPerMinute: tpm } = budget
  const tokens = Math.min(need, tpm)
  let wait = 0
  let limit: 0 | 1 | 2 = 0
  if (rpm > 0 && filled.requests < 1) {
    wait = (1 - filled.requests) * minute / rpm
    limit = 1
  }
  if (tpm > 0 && filled.tokens < tokens) {
    const forTokens = (tokens - filled.tokens) * minute / tpm
    if (forTokens > wait) {
      wait = forTokens
      limit = 2
    }
  }
  const millis = wholeMillis(wait)
  if (millis > maxWait) return [filled, [1, millis, limit]]
  if (rpm > 0) filled.requests -= 1
  if (tpm > 0) filled.tokens -= tokens
  return [filled, [0, millis, limit]]
}

/** `bucket` refilled to `now` with `requests` and `tokens` given back (negative: taken), at most a full bucket. */
export const giveBack = (
  bucket: Bucket | undefined,
  now: number,
  budget: Budget,
  requests: number,
  tokens: number
): Bucket => {
  const filled = refill(bucket, now, budget)
  if (budget.requestsPerMinute > 0) filled.requests = Math.min(budget.requestsPerMinute, filled.requests + requests)
  if (budget.tokensPerMinute > 0) filled.tokens = Math.min(budget.tokensPerMinute, filled.tokens + tokens)
  return filled
}

/** The same bucket in Redis: a hash (`r`, `t`, `at`, `held`) changed by one script at a time, expiring once full again. */
const luaCommon = `
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'at', 'held')
local at = tonumber(s[3])
local r, t
if at == nil then
  r = rpm
  t = tpm
  at = now
else
  local elapsed = math.max(0, now - at)
  r = math.min(rpm, (tonumber(s[1]) or rpm) + elapsed * rpm / 60000)
  t = math.min(tpm, (tonumber(s[2]) or tpm) + elapsed * tpm / 60000)
  at = math.max(now, at)
end
local held = tonumber(s[4]) or 0
local function save()
  local ttl = held - now
  if rpm > 0 then ttl = math.max(ttl, (rpm - r) * 60000 / rpm) end
  if tpm > 0 then ttl = math.max(ttl, (tpm - t) * 60000 / tpm) end
  local function exact(x) return string.format('%.17g', x) end
  redis.call('HSET', KEYS[1], 'r', exact(r), 't', exact(t), 'at', exact(at), 'held', exact(held))
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl) + 1000)
end
`

/** ARGV: now, rpm, tpm, need, maxWait; answers the `Answer` triple (see `take`). */
const luaTake = luaCommon + `
if held > now then return {2, math.ceil(held - now), 0} end
local need = math.min(tonumber(ARGV[4]), tpm)
local wait = 0
local limit = 0
if rpm > 0 and r < 1 then
  wait = (1 - r) * 60000 / rpm
  limit = 1
end
if tpm > 0 and t < need then
  local forTokens = (need - t) * 60000 / tpm
  if forTokens > wait then
    wait = forTokens
    limit = 2
  end
end
wait = math.ceil(wait - 0.000001)
if wait > tonumber(ARGV[5]) then return {1, wait, limit} end
if rpm == 0 and tpm == 0 then return {0, 0, 0} end
if rpm > 0 then r = r - 1 end
if tpm > 0 then t = t - need end
save()
return {0, wait, limit}
`

/** ARGV: now, rpm, tpm, requests, tokens given back (negative: taken). */
const luaGiveBack = luaCommon + `
if rpm > 0 then r = math.min(rpm, r + tonumber(ARGV[4])) end
if tpm > 0 then t = math.min(tpm, t + tonumber(ARGV[5])) end
save()
return 1
`

/** ARGV: now, rpm, tpm, until: the bucket is held until then (or later, if it already was). */
const luaHold = luaCommon + `
held = math.max(held, tonumber(ARGV[4]))
save()
return 1
`

/** The scripts as ioredis commands, defined on the shared client. */
export interface Commands {
  effectLlmLimitTake(key: string, ...args: Array<number>): Promise<[number, number, number]>
  effectLlmLimitGiveBack(key: string, ...args: Array<number>): Promise<number>
  effectLlmLimitHold(key: string, ...args: Array<number>): Promise<number>
}

/** Defines the scripts on `connection`'s client (once is enough; again is harmless) and gives them. */
export const commandsOf = (connection: RedisConnection): Commands => {
  const { client } = connection
  client.defineCommand("effectLlmLimitTake", { numberOfKeys: 1, lua: luaTake })
  client.defineCommand("effectLlmLimitGiveBack", { numberOfKeys: 1, lua: luaGiveBack })
  client.defineCommand("effectLlmLimitHold", { numberOfKeys: 1, lua: luaHold })
  return client as unknown as Commands
}

/**
 * The Retry-After holds this process heard of from the others, per
 * connection (bucket key -> until): each hold is published on one channel
 * besides being written in its bucket, so that a backend without a budget
 * checks it without a round trip. Subscribed on every (re)connection; a hold
 * published while this process was away is missed (its own 429 then holds it).
 */
const heard = new WeakMap<RedisConnection, Map<string, number>>()

const holdsHeardBy = (connection: RedisConnection): Map<string, number> => {
  const known = heard.get(connection)
  if (known !== undefined) return known
  const holds = new Map<string, number>()
  heard.set(connection, holds)
  const channel = channelOf(connection)
  const subscriber = connection.subscriber()
  subscriber.on("message", (from: string, message: string) => {
    if (from !== channel) return
    const at = message.lastIndexOf(" ")
    const until = Number(message.slice(at + 1))
    const key = message.slice(0, at)
    if (at > 0 && Number.isFinite(until) && until > (holds.get(key) ?? 0)) holds.set(key, until)
  })
  const subscribe = () => {
    subscriber.subscribe(channel).catch(() => {})
  }
  subscriber.on("ready", subscribe)
  if (subscriber.status === "ready") subscribe()
  return holds
}

const channelOf = (connection: RedisConnection): string => connection.key("limit", "held")

/** A request let through: `settle` corrects its token estimate with what the reply reported it used. */
export interface Permit {
  readonly settle: (usage: Usage | undefined) => void
}

const noPermit: Permit = { settle: () => {} }

/** One backend model's limits, as a call meets them. */
export interface Limiter {
  /**
   * Waits for the budget of one request whose body is `bodyLength`
   * characters and whose reply may take `maxTokens`, at most `maxWait`
   * millis; fails at once with `LlmRateLimitError` (its `limit` set) when
   * the wait would be longer, or while a Retry-After holds the backend.
   * An interruption while waiting gives the budget back.
   */
  readonly admit: (
    bodyLength: number,
    maxTokens: number | undefined,
    maxWait: number
  ) => Effect.Effect<Permit, LlmRateLimitError>
  /** A 429 asked to wait `retryAfter`: every call of the backend (in every process sharing state) is held until it passes. */
  readonly hold: (retryAfter: Duration.Duration) => Effect.Effect<void>
}

/** The limits of a layer's backend: a `Limiter` per model, whose errors name it. */
export interface Limits {
  readonly forModel: (context: ErrorContext) => Limiter
}

/** About four characters a token for the prompt (its JSON included), plus the output the call allows. */
export const estimateTokens = (bodyLength: number, maxTokens: number | undefined): number =>
  Math.ceil(bodyLength / 4) + (maxTokens ?? 0)

const kinds: ReadonlyArray<RateLimitKind> = ["retryAfter", "requests", "tokens"]

/** The error of a call refused before it was sent. */
const refusal = (
  context: ErrorContext,
  budget: Budget,
  answer: Answer,
  tokens: number,
  maxWait: number
): LlmRateLimitError => {
  const [status, wait, which] = answer
  const limit = status === 2 ? "retryAfter" : kinds[which]!
  const waitText = Duration.format(Duration.millis(wait))
  const what = limit === "retryAfter"
    ? `held by a 429's Retry-After for ${waitText} more; nothing was sent`
    : `the rate limit of ${
      limit === "requests" ? `${budget.requestsPerMinute} requests` : `${budget.tokensPerMinute} tokens`
    } a minute allows this request${
      limit === "tokens" ? ` (about ${tokens} tokens)` : ""
    } in ${waitText}, after its deadline (${Duration.format(Duration.millis(maxWait))}); nothing was sent`
  return new LlmRateLimitError({
    provider: context.provider,
    model: context.model,
    message: `${context.provider} (${context.model}): ${what}`,
    retryAfter: Duration.millis(wait),
    limit
  })
}

/** What identifies a backend across processes. */
export interface Identity {
  readonly baseUrl: string
  /** The credential headers' values (only their fingerprint is used). */
  readonly credentials: string
}

/**
 * A layer's limits: the budgets of `options`, in this process or in the
 * Redis of `shared`; undefined when there is nothing to limit (no budget,
 * and state kept in memory: a 429 then holds only the call that got it, as
 * its retry policy waits it out). With Redis, a 429's Retry-After holds the
 * backend for every process even without a budget.
 *
 * A bucket is named by the budget's name (default provider:model) and a
 * fingerprint of the base URL and the API key. While Redis does not answer,
 * this process's own buckets are used; a 429 holds this process's bucket
 * too, so that it holds here even then.
 */
export const make = (
  options: RateLimitOptions | undefined,
  shared: SharedState.Service,
  identity: Identity
): Effect.Effect<Limits | undefined> =>
  Effect.map(Effect.runtime<never>(), (runtime) => {
    const budget: Budget = {
      requestsPerMinute: options?.requestsPerMinute ?? 0,
      tokensPerMinute: options?.tokensPerMinute ?? 0
    }
    const budgeted = budget.requestsPerMinute > 0 || budget.tokensPerMinute > 0
    if (!budgeted && shared._tag === "Memory") return undefined
    const redis = shared._tag === "Redis"
      ? {
        connection: shared.connection,
        commands: commandsOf(shared.connection),
        heard: holdsHeardBy(shared.connection)
      }
      : undefined
    const fingerprint = keyFingerprint(`${identity.baseUrl}\n${identity.credentials}`)
    const background = Runtime.runFork(runtime)
    const local = new Map<string, Bucket>()
    const limiters = new Map<string, Limiter>()
    const budgetArgs = (now: number) => [now, budget.requestsPerMinute, budget.tokensPerMinute] as const

    const limiterFor = (context: ErrorContext): Limiter => {
      const name = options?.name ?? `${context.provider}:${context.model}`
      const key = redis?.connection.key("limit", name, fingerprint) ?? name
      /** How long a Retry-After this process got, or heard of, still holds the backend. */
      const heldFor = (now: number) =>
        Math.ceil(Math.max(local.get(key)?.heldUntil ?? 0, redis?.heard.get(key) ?? 0) - now)

      /** Takes from this process's bucket. */
      const takeHere = (now: number, need: number, maxWait: number): Answer => {
        const [bucket, answer] = take(local.get(key), now, budget, need, maxWait)
        local.set(key, bucket)
        return answer
      }
      /**
       * Takes from Redis's bucket, or this process's while Redis does not answer; says which. Without a
       * budget only holds are checked, and those this process heard of already were.
       */
      const takeFrom = (now: number, need: number, maxWait: number): Effect.Effect<readonly [Answer, boolean]> =>
        redis === undefined || !budgeted
          ? Effect.succeed([takeHere(now, need, maxWait), false])
          : Effect.map(
            redis.connection.run(() => redis.commands.effectLlmLimitTake(key, ...budgetArgs(now), need, maxWait)),
            Option.match({
              onNone: () => [takeHere(now, need, maxWait), false] as const,
              onSome: (answer) => [answer as unknown as Answer, true] as const
            })
          )
      /** Gives back to the bucket it was taken from, Redis's in the background. */
      const giveBackTo = (inRedis: boolean, now: number, requests: number, tokens: number): void => {
        if (redis === undefined || !inRedis) {
          local.set(key, giveBack(local.get(key), now, budget, requests, tokens))
          return
        }
        background(
          redis.connection.run(() => redis.commands.effectLlmLimitGiveBack(key, ...budgetArgs(now), requests, tokens))
        )
      }

      const admit = (bodyLength: number, maxTokens: number | undefined, maxWait: number) =>
        Effect.clockWith((clock): Effect.Effect<Permit, LlmRateLimitError> => {
          const now = clock.unsafeCurrentTimeMillis()
          const held = heldFor(now)
          if (held > 0) return Effect.fail(refusal(context, budget, [2, held, 0], 0, maxWait))
          const need = budget.tokensPerMinute > 0
            ? Math.min(estimateTokens(bodyLength, maxTokens), budget.tokensPerMinute)
            : 0
          return Effect.flatMap(takeFrom(now, need, maxWait), ([answer, inRedis]) => {
            if (answer[0] !== 0) return Effect.fail(refusal(context, budget, answer, need, maxWait))
            if (!budgeted) return Effect.succeed(noPermit)
            const permit: Permit = {
              settle: (usage) => {
                const used = usage?.totalTokens ?? 0
                // nothing reported: the estimate stands
                if (budget.tokensPerMinute === 0 || used <= 0 || used === need) return
                giveBackTo(inRedis, clock.unsafeCurrentTimeMillis(), 0, need - used)
              }
            }
            const wait = answer[1]
            if (wait <= 0) return Effect.succeed(permit)
            const giveAllBack = () => giveBackTo(inRedis, clock.unsafeCurrentTimeMillis(), 1, need)
            return Effect.sleep(Duration.millis(wait)).pipe(
              Effect.onInterrupt(() => Effect.sync(giveAllBack)),
              Effect.flatMap(() => {
                // a 429 this process got while the call waited holds it too
                const after = clock.unsafeCurrentTimeMillis()
                const heldNow = heldFor(after)
                if (heldNow <= 0) return Effect.succeed(permit)
                giveAllBack()
                return Effect.fail(refusal(context, budget, [2, heldNow, 0], 0, maxWait))
              })
            )
          })
        })

      const hold = (retryAfter: Duration.Duration) =>
        Effect.clockWith((clock) => {
          const now = clock.unsafeCurrentTimeMillis()
          const until = now + Duration.toMillis(retryAfter)
          const bucket = refill(local.get(key), now, budget)
          bucket.heldUntil = Math.max(bucket.heldUntil, until)
          local.set(key, bucket)
          if (redis !== undefined) {
            const { commands, connection } = redis
            background(connection.run(() =>
              Promise.all([
                commands.effectLlmLimitHold(key, ...budgetArgs(now), until),
                connection.client.publish(channelOf(connection), `${key} ${until}`)
              ])
            ))
          }
          return Effect.void
        })
      return { admit, hold }
    }

    return {
      forModel: (context) => {
        let limiter = limiters.get(context.model)
        if (limiter === undefined) {
          limiter = limiterFor(context)
          limiters.set(context.model, limiter)
        }
        return limiter
      }
    }
  })
