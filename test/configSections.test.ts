/**
 * `LlmConfig` decodes each section with a schema: every setting under its
 * snake_case key, checked by the same range checks the layers use, and a
 * configuration of the wrong shape is a `ConfigError`, never a defect.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as LlmConfig from "../src/Config.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as FakeProvider from "./support/FakeProvider.js"

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

describe("LlmConfig: reasoning, prompt_cache and provider_options", () => {
  it.live("a backend's reasoning, prompt_cache and provider_options reach every request it sends", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const config = {
        llm: {
          backend: "local",
          local: {
            base_url: server.url,
            model: "gpt-oss-20b",
            server: "llama.cpp",
            reasoning: "high",
            prompt_cache: { slot: 2 },
            provider_options: { top_k: 20, chat_template_kwargs: { builtin_tools: [] } }
          }
        }
      }
      yield* Llm.complete([Message.user("hi")]).pipe(Effect.provide(LlmConfig.layerFrom(config)))
      // llama-server reads the effort in the chat template's arguments, merged with the configured ones
      expect(server.requests[0]!.body).toEqual({
        model: "gpt-oss-20b",
        messages: [{ role: "user", content: "hi" }],
        chat_template_kwargs: { reasoning_effort: "high", builtin_tools: [] },
        id_slot: 2,
        cache_prompt: true,
        top_k: 20
      })
    })))

  it.live("reasoning off and { budget_tokens }, prompt_cache false, as the layers' options", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const ask = (local: Record<string, unknown>) =>
        Llm.complete([Message.user("hi")]).pipe(
          Effect.provide(
            LlmConfig.layerFrom({
              llm: { backend: "local", local: { base_url: server.url, server: "ollama", ...local } }
            })
          )
        )
      yield* ask({ reasoning: "off", prompt_cache: false })
      yield* ask({ reasoning: { budget_tokens: 9000 } })
      yield* ask({ reasoning: false, prompt_cache: true })
      const [off, budget, offAgain] = server.requests.map((request) => request.body as Record<string, unknown>)
      expect(off!.reasoning_effort).toBe("none")
      expect(budget!.reasoning_effort).toBe("high")
      expect(offAgain!.reasoning_effort).toBe("none")
    })))

  it.effect("a bad reasoning, prompt_cache or provider_options is a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const local = (settings: Record<string, unknown>) => ({ llm: { backend: "local", local: settings } })
      expect(yield* outcome(local({ reasoning: "maximal" }))).toMatch(
        /llm\.local\.reasoning: expected low, medium, high, off, or \{ budget_tokens: a positive integer \}, got "maximal"/
      )
      expect(yield* outcome(local({ reasoning: { budget_tokens: 0 } }))).toMatch(/llm\.local\.reasoning: expected/)
      expect(yield* outcome(local({ reasoning: { effort: "high" } }))).toBe("ok")
      expect(yield* outcome(local({ prompt_cache: { slot: -1 } }))).toMatch(
        /llm\.local\.prompt_cache: expected slot: a non-negative integer, got -1/
      )
      expect(yield* outcome(local({ prompt_cache: { ttl: "2h" } }))).toMatch(/expected ttl: 5m or 1h, got "2h"/)
      expect(yield* outcome(local({ prompt_cache: { slots: 1 } }))).toMatch(
        /llm\.local\.prompt_cache: expected only key, slot and ttl; "slots" is not one/
      )
      expect(yield* outcome(local({ prompt_cache: "yes" }))).toMatch(/expected false, or \{ key, slot, ttl \}/)
      expect(yield* outcome(local({ provider_options: { model: "other" } }))).toMatch(
        /llm\.local\.provider_options: expected a JSON object of request-body fields \(provider_options\.model would replace the model/
      )
      expect(yield* outcome(local({ provider_options: ["top_k"] }))).toMatch(
        /provider_options must be a JSON object of body fields, got an array/
      )
    }))

  it.effect("a provider_options value is never echoed in the error (it may hold a secret)", () =>
    Effect.gen(function*() {
      const error = yield* outcome({
        llm: { backend: "local", local: { provider_options: { messages: "sk-secret-123" } } }
      })
      expect(error).toMatch(/provider_options\.messages would replace/)
      expect(error).not.toContain("sk-secret-123")
    }))
})

describe("LlmConfig: a key no setting reads is an error, with the key it is closest to", () => {
  it.effect("in a backend's section, the retry section and the circuit breaker's", () =>
    Effect.gen(function*() {
      expect(yield* outcome({ llm: { backend: "local", local: { max_token: 10 } } })).toMatch(
        /llm\.local\.max_token: expected one of the settings .*max_tokens.*; did you mean max_tokens\?/
      )
      expect(yield* outcome({ llm: { backend: "local", local: { favourite_colour: "red" } } })).toMatch(
        /llm\.local\.favourite_colour: expected one of the settings api_key_env, allow_insecure_http, base_url/
      )
      expect(yield* outcome({ llm: { backend: "local", local: { favourite_colour: "red" } } })).not.toMatch(
        /did you mean/
      )
      expect(yield* outcome({ llm: { backend: "local", retry: { max_retrys: 2 } } })).toMatch(
        /llm\.retry\.max_retrys: .*did you mean max_retries\?/
      )
      const key = { OPENAI_API_KEY: "sk-test" }
      expect(
        yield* outcome(
          { llm: { backend: "local", fallback: ["openai"], openai: {}, circuit_breaker: { cooldwn: 5 } } },
          key
        )
      ).toMatch(/llm\.circuit_breaker\.cooldwn: .*did you mean cooldown\?/)
    }))

  it.effect("the keys only one backend reads are known there and nowhere else; api_key_env is known everywhere", () =>
    Effect.gen(function*() {
      expect(yield* outcome({ llm: { backend: "local", local: { server: "vllm", api_key_env: "LOCAL_KEY" } } })).toBe(
        "ok"
      )
      expect(yield* outcome({ llm: { backend: "openai", openai: { server: "vllm" } } }, { OPENAI_API_KEY: "sk-t" }))
        .toMatch(/llm\.openai\.server: expected one of the settings/)
    }))

  it.effect("a custom backend's section is its factory's to read: no key is refused there", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        LlmConfig.make({ llm: { backend: "mine", mine: { anything: 1 } } }, {
          registry: new Map([["mine", () => Layer.empty as never]])
        })
      )
      expect(Exit.isSuccess(exit)).toBe(true)
    }))
})

describe("LlmConfig: an Anthropic section's structured_output", () => {
  const Answer = Schema.Struct({ answer: Schema.String })
  const ask = (server: FakeProvider.FakeProvider, structured: Record<string, unknown>) =>
    Llm.generateObject([Message.user("hi")], Answer).pipe(
      Effect.provide(LlmConfig.layerFrom({
        llm: { backend: "anthropic", anthropic: { base_url: server.url, model: "claude-x", ...structured } }
      })),
      withEnv({ ANTHROPIC_API_KEY: "sk-ant-test" })
    )

  it.live("native sends output_config; tool (and the default) a forced output tool", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      server.enqueue(
        { kind: "reply", text: JSON.stringify({ answer: "yes" }) },
        { kind: "reply", toolCalls: [{ id: "toolu_1", name: "output", arguments: { answer: "yes" } }] },
        { kind: "reply", toolCalls: [{ id: "toolu_2", name: "output", arguments: { answer: "yes" } }] }
      )
      expect((yield* ask(server, { structured_output: "native" })).value).toEqual({ answer: "yes" })
      yield* Effect.exit(ask(server, { structured_output: "tool" }))
      yield* Effect.exit(ask(server, {}))
      const [native, tool, byDefault] = server.requests.map((request) => request.body as Record<string, unknown>)
      expect(native!.output_config).toBeDefined()
      expect(native!.tools).toBeUndefined()
      for (const body of [tool!, byDefault!]) {
        expect(body.output_config).toBeUndefined()
        expect(body.tool_choice).toMatchObject({ type: "tool" })
      }
    })))

  it.effect("another value, or the key on another backend, is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const anthropic = (settings: Record<string, unknown>) => ({ llm: { backend: "anthropic", anthropic: settings } })
      const vars = { ANTHROPIC_API_KEY: "sk-ant-test" }
      expect(yield* outcome(anthropic({ structured_output: "json" }), vars)).toMatch(
        /llm\.anthropic\.structured_output: expected tool \(a forced output tool, every model\) or native/
      )
      expect(yield* outcome(anthropic({ structured_outputs: "native" }), vars)).toMatch(/structured_output/)
      expect(yield* outcome({ llm: { backend: "local", local: { structured_output: "native" } } })).toMatch(
        /llm\.local\.structured_output/
      )
    }))
})

describe("LlmConfig: rate_limit", () => {
  it.live("a backend's rate_limit is its layer's budget", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const config = {
        llm: {
          backend: "local",
          retry: { max_retries: 0 },
          local: { base_url: server.url, timeout: 5, rate_limit: { requests_per_minute: 1, tokens_per_minute: 50_000 } }
        }
      }
      const outcomes = yield* Effect.all([
        Effect.either(Llm.complete([Message.user("hi")])),
        Effect.either(Llm.complete([Message.user("hi")]))
      ]).pipe(Effect.provide(LlmConfig.layerFrom(config)))
      expect(outcomes[0]!._tag).toBe("Right")
      expect(outcomes[1]!._tag === "Left" && outcomes[1]!.left).toMatchObject({
        _tag: "LlmRateLimitError",
        limit: "requests"
      })
      expect(server.requests.length).toBe(1)
    })))

  it.effect("a bad rate_limit is a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const local = (settings: Record<string, unknown>) => ({ llm: { backend: "local", local: settings } })
      expect(yield* outcome(local({ rate_limit: { requests_per_minute: 0 } }))).toMatch(
        /llm\.local\.rate_limit: expected requests_per_minute: a positive number, got 0/
      )
      expect(yield* outcome(local({ rate_limit: { tokens_per_minute: "lots" } }))).toMatch(
        /llm\.local\.rate_limit: expected tokens_per_minute: a positive number, got "lots"/
      )
      expect(yield* outcome(local({ rate_limit: { request_per_minute: 10 } }))).toMatch(
        /llm\.local\.rate_limit: expected only requests_per_minute and tokens_per_minute; "request_per_minute" is not one; did you mean requests_per_minute\?/
      )
      expect(yield* outcome(local({ rate_limit: 10 }))).toMatch(
        /llm\.local\.rate_limit: expected \{ requests_per_minute, tokens_per_minute \}, got 10/
      )
      expect(yield* outcome(local({ rate_limits: { requests_per_minute: 10 } }))).toMatch(
        /llm\.local\.rate_limits: expected one of the settings .*; did you mean rate_limit\?/
      )
      expect(yield* outcome(local({ rate_limit: { requests_per_minute: 10, tokens_per_minute: null } }))).toBe("ok")
    }))
})
