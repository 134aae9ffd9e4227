/**
 * `LlmConfig` decodes each section with a schema: every setting under its
 * snake_case key, checked by the same range checks the layers use, and a
 * configuration of the wrong shape is a `ConfigError`, never a defect.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as LlmConfig from "../src/Config.js"

const withEnv = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** What building `config` gives: the error's text, "ok", or the defect's text. */
const outcome = (config: unknown, vars: Record<string, string> = {}) =>
  Effect.map(
    Effect.exit(LlmConfig.make(config as LlmConfig.LlmConfigInput).pipe(withEnv(vars))),
    (exit) =>
      Exit.isSuccess(exit)
        ? "ok"
        : exit.cause._tag === "Fail"
        ? String(exit.cause.error)
        : `defect: ${String(exit.cause)}`
  )

describe("LlmConfig sections", () => {
  it.effect("a fallback that is not a list is a ConfigError, also when a model override is set", () =>
    Effect.gen(function*() {
      for (const vars of [{}, { LLM_LOCAL_MODEL: "m" }]) {
        expect(yield* outcome({ llm: { backend: "local", fallback: 5 } }, vars)).toMatch(
          /the configuration: llm\.fallback: expected a list of backend names, got 5/
        )
      }
    }))

  it.effect("the temperature and max_tokens bounds are the request's bounds", () =>
    Effect.gen(function*() {
      expect(yield* outcome({ llm: { backend: "local", local: { temperature: 2, max_tokens: 1 } } })).toBe("ok")
      expect(yield* outcome({ llm: { backend: "local", local: { temperature: 0 } } })).toBe("ok")
      expect(yield* outcome({ llm: { backend: "local", local: { temperature: 2.01 } } })).toMatch(
        /llm\.local\.temperature: expected a number between 0 and 2, got 2\.01/
      )
      expect(yield* outcome({ llm: { backend: "local", local: { max_tokens: 1.5 } } })).toMatch(
        /llm\.local\.max_tokens: expected a positive integer, got 1\.5/
      )
    }))

  it.effect("settings are checked in the order they are listed, each under its snake_case key", () =>
    Effect.gen(function*() {
      const both = { base_url: "nope", idle_timeout: "soon" }
      expect(yield* outcome({ llm: { backend: "local", local: both } })).toMatch(/llm\.local\.base_url: /)
      expect(yield* outcome({ llm: { backend: "local", local: { idle_timeout: "soon" } } })).toMatch(
        /llm\.local\.idle_timeout: expected a duration: seconds as a number, or text like "2 seconds", got "soon"/
      )
      expect(yield* outcome({ llm: { backend: "local", retry: { max_retry_after: -1 } } })).toMatch(
        /llm\.retry\.max_retry_after: expected a non-negative number of seconds, got -1/
      )
      expect(
        yield* outcome({ llm: { backend: "local", local: { base_url: undefined, model: undefined, timeout: null } } })
      ).toBe("ok")
    }))

  it.effect("the circuit breaker's settings are checked when there is a fallback", () =>
    Effect.gen(function*() {
      const config = (circuit_breaker: unknown) => ({
        llm: { backend: "local", fallback: ["openai"], local: {}, openai: {}, circuit_breaker }
      })
      const key = { OPENAI_API_KEY: "sk-test" }
      expect(yield* outcome(config({ failure_threshold: 0 }), key)).toMatch(
        /llm\.circuit_breaker\.failure_threshold: expected a positive integer, got 0/
      )
      expect(yield* outcome(config({ cooldown: "later" }), key)).toMatch(
        /llm\.circuit_breaker\.cooldown: expected a duration/
      )
      expect(yield* outcome(config({ failure_threshold: 2, cooldown: 5 }), key)).toBe("ok")
    }))
})
