import { NodeHttpClient } from "@effect/platform-node"
import type * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { fileURLToPath } from "node:url"
import * as LlmConfig from "../src/Config.js"
import * as Local from "../src/layers/Local.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const yamlFile = fileURLToPath(new URL("./config/voice-assistant.yaml", import.meta.url))
const env = (vars: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** Builds the layer of `config` under `vars` and asks it one question. */
const ask = (
  layer: Layer.Layer<Llm.Llm, unknown, HttpClient.HttpClient>,
  vars: Record<string, string>
) =>
  Llm.complete([Message.user("hi")]).pipe(
    Effect.provide(layer.pipe(Layer.provide(NodeHttpClient.layerUndici), Layer.provide(env(vars))))
  )

/** The error a bad configuration gives, as text. */
const errorOf = (
  config: LlmConfig.LlmConfigInput | LlmConfig.LlmSection,
  vars: Record<string, string> = {},
  source?: string
) => Effect.map(Effect.flip(LlmConfig.make(config, { source }).pipe(Effect.provide(env(vars)))), String)

describe("LlmConfig", () => {
  it.live("the seed's YAML parses, and its local primary falls back to OpenAI", () =>
    Effect.scoped(Effect.gen(function*() {
      const cloud = yield* FakeProvider.make
      cloud.setDefault({ kind: "reply", text: "from openai" })
      const result = yield* ask(LlmConfig.layerFromFile(yamlFile), {
        OPENAI_API_KEY: fakeKey,
        LLM_LOCAL_GPT_OSS_BASE_URL: "http://127.0.0.1:9",
        LLM_OPENAI_BASE_URL: `${cloud.url}/v1`
      })
      expect(result.content).toBe("from openai")
      expect(result.metadata.fallbacks?.[0]?.provider).toBe("local")
      expect(cloud.requests[0]!.body).toMatchObject({ model: "gpt-4o" })
      expect(cloud.requests[0]!.headers.authorization).toBe(`Bearer ${fakeKey}`)
    })))

  it.live("the file path comes from LLM_CONFIG, and LLM_BACKEND / LLM_<NAME>_MODEL override the file", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const result = yield* ask(LlmConfig.layerFromFile(), {
        LLM_CONFIG: yamlFile,
        LLM_BACKEND: "anthropic",
        LLM_FALLBACK: "",
        ANTHROPIC_API_KEY: fakeKey,
        LLM_ANTHROPIC_BASE_URL: server.url,
        LLM_ANTHROPIC_MODEL: "claude-haiku-4-5"
      })
      expect(result.metadata.provider).toBe("anthropic")
      expect(server.requests[0]!.body).toMatchObject({ model: "claude-haiku-4-5", max_tokens: 1024 })
    })))

  it.live("a plain object works (the seed's Quick Start), with the llm wrapper or without", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const quickStart = {
        llm: { backend: "local", local: { base_url: server.url, model: "llama3.1:8b", timeout: 30 } }
      }
      expect((yield* ask(LlmConfig.layerFrom(quickStart), {})).metadata.provider).toBe("local")
      expect((yield* ask(LlmConfig.layerFrom(quickStart.llm), {})).metadata.provider).toBe("local")
      expect(server.requests[1]!.body).toMatchObject({ model: "llama3.1:8b" })
    })))

  it.live("custom backends come from a registry value or service", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const seen: Array<LlmConfig.BackendContext> = []
      const factories = {
        my_company: (context: LlmConfig.BackendContext) => {
          seen.push(context)
          return Local.layer({ baseUrl: String(context.section.endpoint), model: context.section.model ?? "x" })
        }
      }
      const config = { llm: { backend: "my_company", my_company: { endpoint: server.url, model: "in-house-7b" } } }
      const viaValue = yield* ask(LlmConfig.layerFrom(config, { registry: new Map(Object.entries(factories)) }), {})
      expect(viaValue.model).toBe("in-house-7b")
      const viaService = yield* ask(Layer.provide(LlmConfig.layerFrom(config), LlmConfig.registry(factories)), {})
      expect(viaService.metadata.provider).toBe("local")
      expect(seen[0]!.name).toBe("my_company")
    })))

  it.effect("each bad configuration gives one error naming the key, the file and what is expected", () =>
    Effect.gen(function*() {
      const file = "settings.yaml"
      expect(yield* errorOf({ llm: { backend: "gpt5000" } }, {}, file)).toMatch(
        /settings\.yaml: llm\.backend: expected one of local_gpt_oss, local, openai, anthropic, openrouter, got "gpt5000"/
      )
      expect(yield* errorOf({ llm: { backend: "openai", openai: {} } }, {}, file)).toMatch(
        /settings\.yaml: llm\.openai\.api_key_env: expected the environment variable OPENAI_API_KEY/
      )
      expect(yield* errorOf({ llm: { backend: "openai", openai: { api_key_env: "MY_KEY" } } }, {}, file)).toMatch(
        /MY_KEY/
      )
      expect(yield* errorOf({ llm: { backend: "local", local: { base_url: "not a url" } } }, {}, file)).toMatch(
        /settings\.yaml: llm\.local\.base_url: expected an http:\/\/ or https:\/\/ URL, got "not a url"/
      )
      expect(yield* errorOf({ llm: { backend: "local", local: { timeout: -5 } } }, {}, file)).toMatch(
        /llm\.local\.timeout: expected a non-negative number of seconds, got -5/
      )
      expect(yield* errorOf({ llm: { backend: "local", fallback: ["openai"], local: {} } }, {}, file)).toMatch(
        /llm\.fallback\[0\]: expected a configured backend \(local\), got "openai"/
      )
      expect(yield* errorOf({ llm: { backend: "local", local: { temperature: 7 } } })).toMatch(
        /the configuration: llm\.local\.temperature: expected a number between 0 and 2/
      )
      expect(yield* errorOf({ llm: { backend: "local", retry: { max_retries: -1 } } })).toMatch(
        /llm\.retry\.max_retries/
      )
      expect(yield* errorOf({ llm: { backend: "local", local: { model: "a\r\nX-Evil: 1" } } })).toMatch(
        /llm\.local\.model: expected a model name on one line/
      )
    }))

  it.effect("refuses to send a key over plain http to a remote host unless allowed, and never prints the key", () =>
    Effect.gen(function*() {
      const config = { llm: { backend: "openai", openai: { base_url: "http://api.example.com/v1" } } }
      const message = yield* errorOf(config, { OPENAI_API_KEY: fakeKey })
      expect(message).toMatch(/llm\.openai\.base_url: expected https:\/\/ for a remote host/)
      expect(message).not.toContain(fakeKey)
      const allowed = {
        llm: { backend: "openai", openai: { base_url: "http://api.example.com/v1", allow_insecure_http: true } }
      }
      yield* LlmConfig.make(allowed).pipe(Effect.provide(env({ OPENAI_API_KEY: fakeKey })))
    }))

  it.effect("a missing file is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(LlmConfig.readFile("/nonexistent/llm.yaml"))
      expect(String(error)).toContain("/nonexistent/llm.yaml")
    }))
})
