/**
 * Where the state that several processes may share lives: circuit breakers,
 * rate limits and conversations. `layerMemory` (what a program that provides
 * nothing gets) keeps it in this process, as one process needs; `layerRedis`
 * shares it through a Redis server, so that every process of a deployment
 * sees a breaker opened by one, respects one budget and one Retry-After, and
 * can resume a conversation another process began.
 *
 * Redis being down never fails a call: each process goes on with its own
 * state (one warning per outage is logged) and shares again once Redis is back.
 *
 * Like `Pricing`, the `SharedState` in context is read once, when a layer
 * that uses it (`Fallback`, a backend, `Conversation`) is built.
 *
 * @example
 * import { Layer, Redacted } from "effect"
 * import { Fallback, Local, OpenAi, SharedState } from "effect-llm"
 *
 * const Shared = Fallback.layer([Local.layer({ baseUrl: "http://gpu:8080", model: "gpt-oss:120b" }), OpenAi.layerConfig({ model: "gpt-4o" })]).pipe(
 *   Layer.provide(SharedState.layerRedis({ url: "redis://redis:6379", password: Redacted.make(process.env.REDIS_PASSWORD ?? "") }))
 * )
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as RedisConnection from "./internal/redisConnection.js"

/**
 * How to reach the Redis server that shares the state.
 *
 * @since 0.1.0
 */
export interface RedisOptions {
  /** `redis://host:port/db`; a password in it is held as a secret and never logged. */
  readonly url: string | Redacted.Redacted<string>
  /** The password, when it is not in the URL. */
  readonly password?: Redacted.Redacted<string> | undefined
  /** The prefix of every key, so that deployments can share one server (default `effect-llm:`). */
  readonly keyPrefix?: string | undefined
  /** How long a Redis command may take before the call goes on with local state (default 100 ms). */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

/**
 * The state's home: this process (`memory`), or a Redis server (`redis`,
 * with its connection, which facets use through `run`).
 *
 * @since 0.1.0
 */
export type Service =
  | { readonly _tag: "Memory" }
  | { readonly _tag: "Redis"; readonly connection: RedisConnection.RedisConnection }

/**
 * The shared-state service.
 *
 * @since 0.1.0
 */
export class SharedState extends Context.Tag("effect-llm/SharedState")<SharedState, Service>() {}

const memory: Service = { _tag: "Memory" }

/**
 * State kept in this process (the default).
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<SharedState> = Layer.succeed(SharedState, memory)

/**
 * State shared through a Redis server. The connection is made in the
 * background and closed with the layer; while Redis is unreachable, calls
 * go on with this process's own state.
 *
 * @since 0.1.0
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<SharedState> =>
  Layer.scoped(
    SharedState,
    Effect.map(RedisConnection.make(options), (connection): Service => ({ _tag: "Redis", connection }))
  )

/**
 * The `SharedState` in context, or memory when none is provided.
 *
 * @since 0.1.0
 */
export const current: Effect.Effect<Service> = Effect.map(
  Effect.serviceOption(SharedState),
  Option.getOrElse(() => memory)
)
