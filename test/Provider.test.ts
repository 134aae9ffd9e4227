/**
 * The provider kit: a provider declared once gets `make`, `layer` and
 * `layerConfig`; every built-in backend and `LlmConfig` read the one env
 * naming scheme; the local health probe reads no body.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as ChatCompletions from "../src/codecs/ChatCompletions.js"
import * as LlmConfig from "../src/Config.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as Provider from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { serve } from "./support/loopback.js"

const client = NodeHttpClient.layerUndici
const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const
const fromEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

interface AcmeOptions extends Provider.ProviderOptions {
  readonly team?: string | undefined
}

/** A custom provider, declared with the kit as a user would: its key in `x-api-key`, a fixed header, an option's header. */
const Acme = Provider.make<AcmeOptions>({
  name: "acme",
  apiKeyRequired: true,
  keyHeaders: (apiKey) => ({ "x-api-key": Redacted.value(apiKey) }),
  headers: { "x-acme-version": "3" },
  optionHeaders: { team: "x-acme-team" },
  codec: ChatCompletions.make({ maxTokensField: "max_tokens" }),
  defaults: { model: "acme-1", baseUrl: "https://api.acme.test/v1", timeout: "60 seconds", apiKeyEnv: "ACME_API_KEY" }
})

describe("Provider.make", () => {
  it.live("a declared provider's layer sends its headers, defaults and name", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Acme.layer({
        ...fast,
        baseUrl: `${server.url}/v1`,
        apiKey: Redacted.make(fakeKey),
        team: "blue",
        maxTokens: 7
      }).pipe(
        Layer.provide(client)
      )
      const result = yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(result.content).toBe("ok")
      expect(result.metadata.provider).toBe("acme")
      const streamed = yield* LlmStream.collect(Llm.stream([Message.user("q")])).pipe(Effect.provide(layer))
      expect(streamed.content).toBe("ok")
      const [first, second] = server.requests
      expect(first!.path).toBe("/v1/chat/completions")
      expect(first!.headers.authorization).toBeUndefined()
      expect(first!.headers["x-api-key"]).toBe(fakeKey)
      expect(first!.headers["x-acme-version"]).toBe("3")
      expect(first!.headers["x-acme-team"]).toBe("blue")
      expect(first!.body).toMatchObject({ model: "acme-1", max_tokens: 7 })
      expect(second!.body).toMatchObject({ stream: true })
    })))

  it.live("a declared provider's layerConfig reads its key and the LLM_<NAME>_* overrides", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      expect(Acme.env).toEqual({
        apiKey: "ACME_API_KEY",
        apiKeyRequired: true,
        model: "LLM_ACME_MODEL",
        baseUrl: "LLM_ACME_BASE_URL"
      })
      const layer = Acme.layerConfig({ ...fast }).pipe(
        Layer.provide(client),
        Layer.provide(
          fromEnv({ ACME_API_KEY: fakeKey, LLM_ACME_MODEL: "acme-2", LLM_ACME_BASE_URL: `${server.url}/v1` })
        )
      )
      yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(server.requests[0]!.headers["x-api-key"]).toBe(fakeKey)
      expect(server.requests[0]!.body).toMatchObject({ model: "acme-2" })
      const missing = Acme.layerConfig().pipe(Layer.provide(client), Layer.provide(fromEnv({})))
      const error = yield* Effect.flip(Effect.provide(Llm.complete([Message.user("q")]), missing))
      expect(String(error)).toContain("ACME_API_KEY")
    })))

  it.effect("a declared provider's key is refused over plain http to a remote host, and never shown", () =>
    Effect.gen(function*() {
      const layer = Acme.layer({
        baseUrl: "http://api.acme.test/v1",
        apiKey: Redacted.make(fakeKey),
        retry: { maxRetries: 0 }
      }).pipe(
        Layer.provide(client)
      )
      const error = yield* Effect.flip(Llm.complete([Message.user("q")]).pipe(Effect.provide(layer)))
      expect(error._tag).toBe("LlmInvalidRequestError")
      expect(error.message).toContain("refusing to send the API key over plain http to api.acme.test")
      expect(error.message).not.toContain(fakeKey)
    }))

  it("every built-in backend declares its variables in the one scheme", () => {
    expect([OpenAi.provider.env, Anthropic.provider.env, OpenRouter.provider.env, Local.provider.env]).toEqual([
      { apiKey: "OPENAI_API_KEY", apiKeyRequired: true, model: "LLM_OPENAI_MODEL", baseUrl: "LLM_OPENAI_BASE_URL" },
      {
        apiKey: "ANTHROPIC_API_KEY",
        apiKeyRequired: true,
        model: "LLM_ANTHROPIC_MODEL",
        baseUrl: "LLM_ANTHROPIC_BASE_URL"
      },
      {
        apiKey: "OPENROUTER_API_KEY",
        apiKeyRequired: true,
        model: "LLM_OPENROUTER_MODEL",
        baseUrl: "LLM_OPENROUTER_BASE_URL"
      },
      { apiKey: "LLM_LOCAL_API_KEY", apiKeyRequired: false, model: "LLM_LOCAL_MODEL", baseUrl: "LLM_LOCAL_BASE_URL" }
    ])
  })

  it.live("the old variable names are no longer read", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = OpenAi.layerConfig({ ...fast, baseUrl: `${server.url}/v1` }).pipe(
        Layer.provide(client),
        Layer.provide(
          fromEnv({ OPENAI_API_KEY: fakeKey, OPENAI_MODEL: "gpt-old", OPENAI_BASE_URL: "http://127.0.0.1:9/v1" })
        )
      )
      yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(server.requests[0]!.body).toMatchObject({ model: "gpt-4o" })
    })))
})

describe("LlmConfig and the local key", () => {
  it.live("LlmConfig's local backend sends LLM_LOCAL_API_KEY, as Local.layerConfig does", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const env = fromEnv({ LLM_LOCAL_API_KEY: fakeKey })
      const configured = LlmConfig.layerFrom({ llm: { backend: "local", local: { base_url: server.url } } })
      yield* Llm.complete([Message.user("q")]).pipe(
        Effect.provide(configured.pipe(Layer.provide(client), Layer.provide(env)))
      )
      const fromLayer = Local.layerConfig({ ...fast, baseUrl: server.url }).pipe(
        Layer.provide(client),
        Layer.provide(env)
      )
      yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(fromLayer))
      expect(server.requests.map((request) => request.headers.authorization)).toEqual([
        `Bearer ${fakeKey}`,
        `Bearer ${fakeKey}`
      ])
    })))
})

describe("Local.health", () => {
  it.live("when /health and /v1/models both fail, the error names the status and quotes no body it did not read", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url: baseUrl } = yield* serve((req, res) => {
        res.writeHead(req.url === "/health" ? 404 : 500, { "content-type": "text/plain" })
        res.end("model list broken")
      })
      const error = yield* Effect.flip(Local.health({ baseUrl }).pipe(Effect.provide(client)))
      expect(error._tag).toBe("LlmProviderError")
      expect(error.message).toBe("local (gpt-oss:120b) HTTP 500: the provider failed")
    })))
})
