/**
 * The configuration's `state` section: `state.redis` shares the breakers (and
 * the other state) of the layer it builds through that Redis; its password
 * and a URL from `url_env` come from the environment as secrets and never
 * appear in an error; every mistake is a `ConfigError` naming its key, a
 * typo with the key it is closest to.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"
import * as LlmConfig from "../src/Config.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { testRedis } from "./support/redis.js"

const withEnv = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** What building `config` gives: the error's text, or "ok". */
const outcome = (config: unknown, vars: Record<string, string> = {}) =>
  Effect.map(
    Effect.exit(LlmConfig.make(config as LlmConfig.LlmConfigInput).pipe(withEnv(vars))),
    (exit) => (Exit.isSuccess(exit) ? "ok" : exit.cause._tag === "Fail" ? String(exit.cause.error) : "defect")
  )

const llm = { backend: "local", local: { base_url: "http://127.0.0.1:9" } }
const withState = (state: unknown) => ({ llm, state })

describe("LlmConfig: the state section", () => {
  it.effect("is optional, and a redis section needs its URL", () =>
    Effect.gen(function*() {
      expect(yield* outcome({ llm })).toBe("ok")
      expect(yield* outcome(withState({}))).toBe("ok")
      expect(yield* outcome(withState({ redis: { url: "redis://127.0.0.1:6379/0", key_prefix: "app:" } }))).toBe("ok")
      expect(yield* outcome(withState({ redis: { key_prefix: "app:" } }))).toMatch(
        /the configuration: state\.redis\.url: expected the Redis URL \(or url_env/
      )
      expect(yield* outcome(withState({ redis: { url: "redis://h", url_env: "REDIS_URL" } }), { REDIS_URL: "x" }))
        .toMatch(/state\.redis\.url: expected either url or url_env, not both/)
      expect(yield* outcome(withState("redis"))).toMatch(/state: expected a section with redis/)
    }))

  it.effect("a key no setting reads is an error, with the key it is closest to", () =>
    Effect.gen(function*() {
      expect(yield* outcome(withState({ reddis: { url: "redis://h" } }))).toMatch(
        /state\.reddis: expected one of the settings redis; did you mean redis\?/
      )
      expect(yield* outcome(withState({ redis: { url: "redis://h", key_prefx: "a:" } }))).toMatch(
        /state\.redis\.key_prefx: expected one of the settings url, url_env, password_env, key_prefix, command_timeout; did you mean key_prefix\?/
      )
    }))

  it.effect("each setting is checked", () =>
    Effect.gen(function*() {
      expect(yield* outcome(withState({ redis: { url: "http://h:6379" } }))).toMatch(
        /state\.redis\.url: expected a redis:\/\/ or rediss:\/\/ URL, got "http:\/\/h:6379"/
      )
      expect(yield* outcome(withState({ redis: { url: "redis://h", command_timeout: "soon" } }))).toMatch(
        /state\.redis\.command_timeout: expected a duration/
      )
      expect(yield* outcome(withState({ redis: { url: "redis://h", key_prefix: "" } }))).toMatch(
        /state\.redis\.key_prefix: expected text on one line/
      )
      expect(yield* outcome(withState({ redis: { url: "redis://h", password_env: "not a name" } }))).toMatch(
        /state\.redis\.password_env: expected the name of an environment variable/
      )
    }))

  it.effect("credentials come from the environment and never appear in an error", () =>
    Effect.gen(function*() {
      const secret = "hunter2-redis-password"
      const inUrl = yield* outcome(withState({ redis: { url: `redis://user:${secret}@h:6379` } }))
      expect(inUrl).toMatch(/state\.redis\.url: expected a Redis URL without a password: put it in password_env/)
      expect(inUrl).not.toContain(secret)
      expect(yield* outcome(withState({ redis: { url: "redis://h", password_env: "REDIS_PASSWORD" } }))).toMatch(
        /state\.redis\.password_env: expected the environment variable REDIS_PASSWORD to be set/
      )
      expect(yield* outcome(withState({ redis: { url_env: "REDIS_URL" } }))).toMatch(
        /state\.redis\.url_env: expected the environment variable REDIS_URL to be set/
      )
      const notUrl = yield* outcome(withState({ redis: { url_env: "REDIS_URL" } }), { REDIS_URL: secret })
      expect(notUrl).toMatch(/state\.redis\.url_env: expected the environment variable REDIS_URL to hold a Redis URL/)
      expect(notUrl).not.toContain(secret)
      expect(
        yield* outcome(withState({ redis: { url_env: "REDIS_URL", password_env: "REDIS_PASSWORD" } }), {
          REDIS_URL: `redis://:${secret}@h:6379`,
          REDIS_PASSWORD: secret
        })
      ).toBe("ok")
    }))

  it.live("shares the chain's breakers through that Redis, with the password from password_env", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* testRedis
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 })
      yield* Effect.addFinalizer(() => Effect.sync(() => admin.disconnect()))
      const password = "s3cret-state-password"
      yield* Effect.promise(() => admin.config("SET", "requirepass", password))
      const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
      primary.setDefault({ kind: "status", status: 503, message: "down" })
      secondary.setDefault({ kind: "reply", text: "secondary" })
      const config = {
        llm: {
          backend: "local",
          fallback: ["openai"],
          local: { base_url: primary.url, model: "gpu-model" },
          openai: { base_url: `${secondary.url}/v1` },
          retry: { max_retries: 0 },
          circuit_breaker: { failure_threshold: 1, cooldown: 30 }
        },
        state: { redis: { url: redis.url, password_env: "REDIS_PASSWORD", key_prefix: "cfg:" } }
      }
      const layer = yield* LlmConfig.make(config).pipe(
        withEnv({ OPENAI_API_KEY: "sk-test", REDIS_PASSWORD: password })
      )
      const result = yield* Llm.complete([Message.user("Hello?")]).pipe(
        Effect.provide(layer.pipe(Layer.provide(NodeHttpClient.layerUndici)))
      )
      expect(result.content).toBe("secondary")
      yield* Effect.promise(() => admin.auth(password))
      expect(yield* Effect.promise(() => admin.exists("cfg:breaker:open:local:gpu-model"))).toBe(1)
    })))
})
