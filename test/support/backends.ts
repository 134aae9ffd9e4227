/**
 * The backends the conformance suite runs against, each pointed at the fake
 * provider server. A new backend gets the whole suite by adding one entry.
 */
import { NodeHttpClient } from "@effect/platform-node"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as HttpTransport from "../../src/HttpTransport.js"
import * as Anthropic from "../../src/layers/Anthropic.js"
import * as Local from "../../src/layers/Local.js"
import * as OpenAi from "../../src/layers/OpenAi.js"
import * as OpenRouter from "../../src/layers/OpenRouter.js"
import type { Llm } from "../../src/Llm.js"
import type { ProviderOptions } from "../../src/Provider.js"

/** A recognisable fake key: tests scan outputs for it. */
export const fakeKey = "sk-test-SECRET-0123456789"

export interface Backend {
  /** The name tests are listed under. */
  readonly name: string
  /** The provider the layer reports in results and errors. */
  readonly provider: string
  /** The wire protocol the fake server must speak. */
  readonly protocol: "chat" | "messages"
  /** The header that carries the key, and its expected value. */
  readonly authHeader: readonly [string, string]
  readonly layer: (url: string, options?: ProviderOptions) => Layer.Layer<Llm>
}

const fast: ProviderOptions = { retry: { initialDelay: "5 millis", maxDelay: "20 millis" } }

/** The backends over the default transport (undici, directly). */
export const backends: ReadonlyArray<Backend> = [
  {
    name: "local",
    provider: "local",
    protocol: "chat",
    authHeader: ["authorization", `Bearer ${fakeKey}`],
    layer: (url, options) =>
      Local.layer({ ...fast, ...options, baseUrl: url, model: "gpt-oss:20b", apiKey: Redacted.make(fakeKey) })
  },
  {
    name: "openai",
    provider: "openai",
    protocol: "chat",
    authHeader: ["authorization", `Bearer ${fakeKey}`],
    layer: (url, options) =>
      OpenAi.layer({ ...fast, ...options, baseUrl: `${url}/v1`, model: "gpt-4o", apiKey: Redacted.make(fakeKey) })
  },
  {
    name: "openrouter",
    provider: "openrouter",
    protocol: "chat",
    authHeader: ["authorization", `Bearer ${fakeKey}`],
    layer: (url, options) =>
      OpenRouter.layer({
        ...fast,
        ...options,
        baseUrl: `${url}/api/v1`,
        model: "openai/gpt-4o",
        apiKey: Redacted.make(fakeKey),
        referer: "https://example.test",
        title: "effect-llm tests"
      })
  },
  {
    name: "anthropic",
    provider: "anthropic",
    protocol: "messages",
    authHeader: ["x-api-key", fakeKey],
    layer: (url, options) =>
      Anthropic.layer({
        ...fast,
        ...options,
        baseUrl: url,
        model: "claude-sonnet-4-20250514",
        apiKey: Redacted.make(fakeKey)
      })
  }
]

/**
 * The same backends, for each wire format, sending through `@effect/platform`'s
 * `HttpClient` (`HttpTransport.layerHttpClient` on `NodeHttpClient.layerUndici`)
 * instead of the default transport.
 */
export const viaHttpClient: ReadonlyArray<Backend> = ["local", "anthropic"].map((name) => {
  const backend = backends.find((b) => b.name === name)!
  return {
    ...backend,
    name: `${name} (HttpClient)`,
    layer: (url, options) =>
      backend.layer(url, options).pipe(
        Layer.provide(HttpTransport.layerHttpClient),
        Layer.provide(NodeHttpClient.layerUndici)
      )
  }
})

/** Every backend over every transport. */
export const allBackends: ReadonlyArray<Backend> = [...backends, ...viaHttpClient]
