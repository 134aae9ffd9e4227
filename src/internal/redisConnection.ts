/** One Redis connection shared by the state facets, which degrade to this process's own state while Redis is down. */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import { type ErrorContext, redactSecrets } from "./errorFactory.js"

/** Where the Redis server is, and how long a command may take before the call goes on without it. */
export interface RedisConnectionOptions {
  /** `redis://host:port/db` (a password in it is held as a secret, never logged). */
  readonly url: string | Redacted.Redacted<string>
  /** The password, when not in the URL. */
  readonly password?: Redacted.Redacted<string> | undefined
  /** The prefix of every key (default `effect-llm:`). */
  readonly keyPrefix?: string | undefined
  /** How long a command may take before the call uses local state instead (default 100 ms). */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

/**
 * A live connection: `run` sends a command and gives `None` when Redis is
 * unreachable, slow or failing, so the caller goes on with its local state.
 * The first failure of an outage logs one warning; the first success after it
 * logs that state is shared again.
 */
export interface RedisConnection {
  /** The ioredis client (for scripts and pipelines); send through `run`. */
  readonly client: Redis
  /** `keyPrefix` joined with `parts` by `:`. */
  readonly key: (...parts: ReadonlyArray<string>) => string
  /** Runs `command` on the client: `Some` of its answer, or `None` while Redis is down (never fails). */
  readonly run: <A>(command: (client: Redis) => Promise<A>) => Effect.Effect<Option.Option<A>>
  /** Whether the last command reached Redis. */
  readonly available: () => boolean
  /** A second connection for subscriptions, made on first use and closed with the connection. */
  readonly subscriber: () => Redis
  /** Where the server is, without credentials: for messages. */
  readonly address: string
}

/** Where a Redis URL points (`host:port`, without user or password) and the password in it ("" when none, or unparsable). */
const parseUrl = (url: string): { readonly address: string; readonly password: string } => {
  try {
    const parsed = new URL(url)
    return {
      address: `${parsed.hostname}:${parsed.port === "" ? "6379" : parsed.port}`,
      password: decodeURIComponent(parsed.password)
    }
  } catch {
    return { address: "the configured Redis server", password: "" }
  }
}

/**
 * Connects to Redis (in the background: the connection is usable at once,
 * and reports `None` until it is up) and closes it with the scope.
 */
export const make = (options: RedisConnectionOptions): Effect.Effect<RedisConnection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { Redis } = yield* Effect.promise(() => import("ioredis"))
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    const password = options.password === undefined ? undefined : Redacted.value(options.password)
    const { address, password: urlPassword } = parseUrl(url)
    // messages name the server, never its credentials
    const redacting: ErrorContext = {
      provider: "redis",
      model: "",
      secrets: [password, urlPassword].filter((secret): secret is string => secret !== undefined && secret !== "")
    }
    const keyPrefix = options.keyPrefix ?? "effect-llm:"
    const commandTimeout = Duration.toMillis(Duration.decode(options.commandTimeout ?? "100 millis"))
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) => Runtime.runFork(runtime)(effect)

    let up = true
    const down = (reason: string) => {
      if (!up) return
      up = false
      log(
        Effect.logWarning(
          `effect-llm: Redis at ${address} is unavailable (${
            redactSecrets(redacting, reason)
          }); breakers, rate limits and conversations use this process's own state until it is back`
        )
      )
    }
    const back = () => {
      if (up) return
      up = true
      log(Effect.logInfo(`effect-llm: Redis at ${address} is back; state is shared again`))
    }

    const connect = (): Redis => {
      const client = new Redis(url, {
        ...(password === undefined ? {} : { password }),
        commandTimeout,
        connectTimeout: Math.max(commandTimeout, 1_000),
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // reconnects forever, at most a second apart
        retryStrategy: (times) => Math.min(50 * times, 1_000)
      })
      client.on("error", (error: Error) => down(error.message))
      return client
    }

    const client = connect()
    client.on("ready", back)
    // the first connection is awaited (until it is ready, fails, or a command's timeout passes), so that the
    // calls right after the layer is built share state, and a server down from the start is one warning
    yield* Effect.async<void>((resume) => {
      const done = () => {
        clearTimeout(timer)
        client.off("ready", done)
        client.off("error", done)
        resume(Effect.void)
      }
      const timer = setTimeout(done, Math.max(commandTimeout, 250))
      client.once("ready", done)
      client.once("error", done)
    })
    let subscriber: Redis | undefined
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        client.disconnect()
        subscriber?.disconnect()
      })
    )

    const run = <A>(command: (client: Redis) => Promise<A>): Effect.Effect<Option.Option<A>> =>
      Effect.map(
        Effect.either(Effect.tryPromise(() => command(client))),
        (result) => {
          if (result._tag === "Right") {
            back()
            return Option.some(result.right)
          }
          const cause = result.left.error
          down(cause instanceof Error ? cause.message : String(cause))
          return Option.none()
        }
      )

    return {
      client,
      key: (...parts) => keyPrefix + parts.join(":"),
      run,
      available: () => up,
      subscriber: () => (subscriber ??= connect()),
      address
    } satisfies RedisConnection
  })
