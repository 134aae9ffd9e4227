/**
 * What only the OpenAI-compatible backends do: recorded streams replayed over
 * HTTP, server quirks, OpenRouter's keep-alives and headers, resets, the local
 * server's health probe, and configuration from the environment.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { inspect } from "node:util"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url))
const client = NodeHttpClient.layerUndici
const fast = { retry: { initialDelay: "1 millis", maxDelay: "2 millis" } } as const

const localAt = (url: string, options: Local.LocalOptions = {}) =>
  Layer.provide(Local.layer({ ...fast, ...options, baseUrl: url }), client)

const withServer = <A, E>(
  f: (server: FakeProvider.FakeProvider) => Effect.Effect<A, E, Llm.Llm>,
  layer: (url: string) => Layer.Layer<Llm.Llm> = (url) => localAt(url)
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* FakeProvider.make
    return yield* f(server).pipe(Effect.provide(layer(server.url)))
  }))

/** The bytes a recorded fixture stands for. */
const recorded = (name: string): FakeProvider.RawReply => {
  const file = join(fixtures, name)
  const raw = readFileSync(file, "utf8")
  if (file.endsWith(".sse")) return { kind: "raw", chunks: [raw] }
  const expected = JSON.parse(readFileSync(`${file}.expected.json`, "utf8")) as {
    derived_from_fixture: { done_sentinel_count?: number }
  }
  const events = raw.split("\n").filter((line) => line.trim() !== "").map((line) => `data: ${line}\n\n`)
  if ((expected.derived_from_fixture.done_sentinel_count ?? 0) > 0) events.push("data: [DONE]\n\n")
  // deliver in uneven reads, as a network would
  const body = events.join("")
  const chunks: Array<string> = []
  for (let i = 0, size = 1; i < body.length; i += size, size = (size * 7) % 97 + 1) chunks.push(body.slice(i, i + size))
  return { kind: "raw", chunks }
}

const expectedOf = (name: string) =>
  (JSON.parse(readFileSync(join(fixtures, `${name}.expected.json`), "utf8")) as {
    derived_from_fixture: {
      text: string | null
      reasoning?: string
      finish_reason: string
      model: string
      usage: { total_tokens: number }
      tool_calls?: ReadonlyArray<{ id: string; name: string; arguments_parsed: unknown }>
    }
  }).derived_from_fixture

const streamedFixtures = ["openai", "openai-compatible"].flatMap((dir) =>
  readdirSync(join(fixtures, dir)).filter((name) => /\.(chunks\.txt|sse)$/.test(name)).map((name) => `${dir}/${name}`)
)

describe("recorded streams over HTTP", () => {
  for (const name of streamedFixtures) {
    it.live(`${name} streams to its expected reply`, () =>
      withServer((server) =>
        Effect.gen(function*() {
          server.enqueue(recorded(name))
          const result = yield* LlmStream.collect(Llm.stream([Message.user("replay")]))
          const expected = expectedOf(name)
          expect(result.content).toBe(expected.text ?? "")
          expect(result.reasoning ?? "").toBe(expected.reasoning ?? "")
          expect(result.finishReason).toBe(expected.finish_reason)
          expect(result.model).toBe(expected.model)
          expect(result.usage.totalTokens).toBe(expected.usage.total_tokens)
          expect(result.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments }))).toEqual(
            (expected.tool_calls ?? []).map((call) => ({
              id: call.id,
              name: call.name,
              arguments: call.arguments_parsed
            }))
          )
        })
      ))
  }
})

describe("server quirks", () => {
  it.live("tool-call fragments without index, and arguments sent as an object", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const toolCalls = [
          { id: "a", name: "first", arguments: { x: 1 } },
          { id: "b", name: "second", arguments: { y: "two" } }
        ]
        server.enqueue(
          { kind: "reply", toolCalls, omitToolCallIndex: true },
          { kind: "reply", toolCalls, argumentsAsObject: true }
        )
        for (let i = 0; i < 2; i++) {
          const result = yield* LlmStream.collect(Llm.stream([Message.user("go")]))
          expect(result.toolCalls.map((call) => ({ ...call }))).toEqual([
            { id: "a", name: "first", arguments: { x: 1 } },
            { id: "b", name: "second", arguments: { y: "two" } }
          ])
        }
      })
    ))

  it.live("a stream reset before the first token is retried; after it, it fails with LlmConnectionError", () =>
    withServer((server) =>
      Effect.gen(function*() {
        server.enqueue({ kind: "reset" }, { kind: "reply", text: "fine" })
        const result = yield* LlmStream.collect(Llm.stream([Message.user("go")]))
        expect(result.content).toBe("fine")
        expect(result.metadata.attempts).toBe(2)

        server.enqueue({ kind: "reply", text: "one two three four five", delayMs: 5, resetAfterEvents: 3 })
        const error = yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("go")])))
        expect(error._tag).toBe("LlmConnectionError")
        expect(server.requests.length).toBe(3)
      })
    ))

  it.live("headers that arrive and then nothing hit the first-token timeout", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "headersOnly" })
          const error = yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("go")])))
          expect(error._tag === "LlmTimeoutError" && error.kind).toBe("firstToken")
        }),
      (url) => localAt(url, { firstTokenTimeout: "150 millis", retry: { maxRetries: 0 } })
    ))

  it.live("an HTML error page with a 502 becomes a LlmProviderError with the page's text", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          server.setDefault({ kind: "status", status: 502, body: "<html>Bad Gateway</html>" })
          const error = yield* Effect.flip(Llm.complete([Message.user("go")]))
          expect(error._tag).toBe("LlmProviderError")
          expect(error.message).toContain("Bad Gateway")
        }),
      (url) => localAt(url, { retry: { maxRetries: 0 } })
    ))

  it.live("a 200 whose JSON lacks choices is a LlmResponseError", () =>
    withServer((server) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "raw", headers: { "content-type": "application/json" }, chunks: ["{\"id\":\"x\"}"] })
        const error = yield* Effect.flip(Llm.complete([Message.user("go")]))
        expect(error._tag).toBe("LlmResponseError")
        expect(server.requests.length).toBe(1)
      })
    ))

  it.live("text/html on a streamed 200 is a LlmResponseError", () =>
    withServer((server) =>
      Effect.gen(function*() {
        server.setDefault({ kind: "raw", headers: { "content-type": "text/html" }, chunks: ["<html></html>"] })
        const error = yield* Effect.flip(Stream.runDrain(Llm.stream([Message.user("go")])))
        expect(error._tag).toBe("LlmResponseError")
      })
    ))
})

describe("OpenRouter", () => {
  const openRouterAt = (url: string) =>
    Layer.provide(
      OpenRouter.layer({
        ...fast,
        baseUrl: `${url}/api/v1`,
        apiKey: Redacted.make(fakeKey),
        referer: "https://app.example",
        title: "My App",
        extraBody: { provider: { order: ["groq"] } }
      }),
      client
    )

  it.live("skips its keep-alive comments, sends attribution headers and routing", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          server.enqueue({
            kind: "reply",
            text: "Routed.",
            leadingComments: 3,
            reasoningField: "reasoning",
            reasoning: "hmm"
          })
          const result = yield* LlmStream.collect(Llm.stream([Message.user("go")]))
          expect(result.content).toBe("Routed.")
          expect(result.reasoning).toBe("hmm")
          const request = server.requests[0]!
          expect(request.path).toBe("/api/v1/chat/completions")
          expect(request.headers["http-referer"]).toBe("https://app.example")
          expect(request.headers["x-title"]).toBe("My App")
          expect(request.body).toMatchObject({ model: "openai/gpt-4o", provider: { order: ["groq"] } })
        }),
      openRouterAt
    ))

  it.live("its in-band error chunk after HTTP 200 fails the stream with the matching class", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          const chunk = (body: object) => `data: ${JSON.stringify(body)}\n\n`
          server.setDefault({
            kind: "raw",
            chunks: [
              ": OPENROUTER PROCESSING\n\n",
              chunk({ id: "g", model: "m", choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }] }),
              chunk({
                id: "g",
                model: "m",
                error: { code: 502, message: "Provider returned error" },
                choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }]
              })
            ],
            delayMs: 5
          })
          const seen: Array<string> = []
          const error = yield* Effect.flip(
            Stream.runForEach(Llm.streamText([Message.user("go")]), (text) => Effect.sync(() => seen.push(text)))
          )
          expect(error._tag).toBe("LlmProviderError")
          expect(error.message).toContain("Provider returned error")
          expect(seen).toEqual(["Hel"])
        }),
      openRouterAt
    ))
})

describe("Local", () => {
  it.live("sends no Authorization header without a key, and an empty string for tool-only turns", () =>
    withServer((server) =>
      Effect.gen(function*() {
        yield* Llm.complete([
          Message.user("q"),
          Message.assistant("", [{ id: "c", name: "f", arguments: {} }]),
          Message.tool({ toolCallId: "c", name: "f", content: "r" })
        ])
        const request = server.requests[0]!
        expect(request.path).toBe("/v1/chat/completions")
        expect(request.headers.authorization).toBeUndefined()
        expect(request.body).toMatchObject({ model: "gpt-oss:120b", messages: [{}, { content: "" }, {}] })
      })
    ))

  it.live("accepts a base URL pasted with /v1", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          yield* Llm.complete([Message.user("q")])
          expect(server.requests[0]!.path).toBe("/v1/chat/completions")
        }),
      (url) => localAt(`${url}/v1/`)
    ))

  it.live("health probes /health, reports loading, falls back to /v1/models, and lists models", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const server = yield* FakeProvider.make
        const probe = { baseUrl: server.url }
        expect((yield* Local.health(probe)).status).toBe("ok")
        server.setHealth(503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } })
        expect((yield* Local.health(probe)).status).toBe("loading")
        server.setHealth(404, { error: "not found" })
        const health = yield* Local.health(probe)
        expect(health).toMatchObject({ status: "ok", endpoint: "/v1/models" })
        expect(yield* Local.models(probe)).toEqual(["fake-model"])
        const down = yield* Effect.flip(Local.health({ baseUrl: "http://127.0.0.1:9" }))
        expect(down._tag === "LlmConnectionError" && down.reason).toBe("refused")
      }).pipe(Effect.provide(client))
    ))
})

describe("layerConfig", () => {
  const fromEnv = (env: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.live("reads the key as Redacted from OPENAI_API_KEY, with model and base URL overrides", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = OpenAi.layerConfig({ ...fast }).pipe(
        Layer.provide(client),
        Layer.provide(
          fromEnv({
            OPENAI_API_KEY: fakeKey,
            LLM_OPENAI_MODEL: "gpt-4.1-mini",
            LLM_OPENAI_BASE_URL: `${server.url}/v1`
          })
        )
      )
      const result = yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(result.content).toBe("ok")
      expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${fakeKey}`)
      expect(server.requests[0]!.body).toMatchObject({ model: "gpt-4.1-mini" })
    })))

  it.effect("fails with a ConfigError naming the variable when the key is missing", () =>
    Effect.gen(function*() {
      const layer = OpenAi.layerConfig().pipe(Layer.provide(client), Layer.provide(fromEnv({})))
      const error = yield* Effect.flip(Effect.provide(Llm.complete([Message.user("q")]), layer))
      expect(String(error)).toContain("OPENAI_API_KEY")
    }))

  it.live("runs the local backend without a key", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Local.layerConfig().pipe(
        Layer.provide(client),
        Layer.provide(fromEnv({ LLM_LOCAL_BASE_URL: server.url }))
      )
      const result = yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(result.metadata.provider).toBe("local")
    })))
})

describe("secrets", () => {
  it.live("the API key appears in no error, message or JSON of any failure", () =>
    withServer(
      (server) =>
        Effect.gen(function*() {
          const failures: ReadonlyArray<readonly [FakeProvider.Script, boolean]> = [
            [{ kind: "status", status: 401, message: "Incorrect API key provided" }, true],
            [{ kind: "status", status: 429 }, true],
            [{ kind: "status", status: 500 }, true],
            [{ kind: "reset" }, true],
            [{ kind: "raw", headers: { "content-type": "application/json" }, chunks: ["{oops"] }, true],
            [{ kind: "reply", text: "x", omitTerminator: true }, false],
            [{ kind: "reply", text: "x y z", malformedAfterEvents: 2 }, false]
          ]
          for (const [script, alsoComplete] of failures) {
            const errors = []
            if (alsoComplete) {
              server.enqueue(script)
              errors.push(yield* Effect.flip(Llm.complete([Message.user("q")])))
            }
            server.enqueue(script)
            errors.push(yield* Effect.flip(LlmStream.collect(Llm.stream([Message.user("q")]))))
            for (const e of errors) {
              const rendered = [String(e), e.message, JSON.stringify(e), inspect(e, { depth: 10 })].join("\n")
              expect(rendered).not.toContain(fakeKey)
            }
          }
        }),
      (url) =>
        Layer.provide(
          OpenAi.layer({ baseUrl: `${url}/v1`, apiKey: Redacted.make(fakeKey), retry: { maxRetries: 0 } }),
          client
        )
    ))
})

describe("OpenRouter.layerConfig", () => {
  it.live("reads OPENROUTER_API_KEY, LLM_OPENROUTER_MODEL and LLM_OPENROUTER_BASE_URL", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const vars = new Map([["OPENROUTER_API_KEY", fakeKey], ["LLM_OPENROUTER_MODEL", "anthropic/claude-sonnet-4.5"], [
        "LLM_OPENROUTER_BASE_URL",
        `${server.url}/api/v1`
      ]])
      const layer = OpenRouter.layerConfig({ title: "cfg" }).pipe(
        Layer.provide(client),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(vars)))
      )
      yield* Llm.complete([Message.user("q")]).pipe(Effect.provide(layer))
      expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${fakeKey}`)
      expect(server.requests[0]!.headers["x-title"]).toBe("cfg")
      expect(server.requests[0]!.body).toMatchObject({ model: "anthropic/claude-sonnet-4.5" })
    })))
})
