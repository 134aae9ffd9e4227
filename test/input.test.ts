/**
 * Bad input is refused with a clear typed error before anything is sent
 * (issue 12): credentials in a base URL, header values a header cannot
 * carry, base URLs that are not http(s), duration typos, prototype names as
 * backends, absurd Retry-After values, non-object tool parameters, and
 * fallback lists that repeat a backend. Every case runs through the public
 * API over loopback against the fake provider, which records what it got.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import { inspect } from "node:util"
import * as LlmConfig from "../src/Config.js"
import type { LlmError } from "../src/errors.js"
import * as HttpTransport from "../src/HttpTransport.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { fakeKey } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { recordSpans } from "./support/spans.js"

const hi = [Message.user("Hi")]
const fast: ProviderOptions = { retry: { maxRetries: 1, initialDelay: "1 millis", maxDelay: "2 millis" } }

/** The error a call fails with, whole request and stream, each checked to be the same kind. */
const refusals = (layer: Layer.Layer<Llm.Llm>, options?: Llm.CompletionOptions) =>
  Effect.gen(function*() {
    const complete = yield* Effect.flip(Llm.complete(hi, options).pipe(Effect.provide(layer)))
    const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi, options)).pipe(Effect.provide(layer)))
    return [complete, streamed] as const
  })

/** Expects both errors of `refusals` to be `LlmInvalidRequestError`s whose message matches `pattern`. */
const expectRefused = (errors: ReadonlyArray<LlmError>, pattern: RegExp, label = "") => {
  for (const error of errors) {
    expect(error._tag, `${label}: ${error.message}`).toBe("LlmInvalidRequestError")
    expect(error.message, label).toContain("nothing was sent")
    expect(error.message, label).toMatch(pattern)
  }
}

/** A span as an exporter would see it: name, attributes, and how it ended. */
const spanText = (span: Tracer.Span): string => {
  const exit = span.status._tag === "Ended" ? span.status.exit : undefined
  const status = exit === undefined || Exit.isSuccess(exit) ? "" : Cause.pretty(exit.cause)
  return [span.name, inspect([...span.attributes], { depth: 10 }), status].join("\n")
}

/** Both probes of a local server at `baseUrl`. */
const probes = (
  baseUrl: string
): ReadonlyArray<Effect.Effect<unknown, LlmError>> => [Local.health({ baseUrl }), Local.models({ baseUrl })]

const configEnv = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** The message of the ConfigError a configuration gives. */
const configError = (
  config: LlmConfig.LlmConfigInput,
  vars: Record<string, string> = {},
  registry?: LlmConfig.BackendFactory
) =>
  Effect.map(
    Effect.flip(
      LlmConfig.make(config, registry === undefined ? {} : { registry: new Map([["custom", registry]]) }).pipe(
        configEnv(vars)
      )
    ),
    (error) => {
      expect(ConfigError.isConfigError(error) && error._op).toBe("InvalidData")
      return String(error)
    }
  )

// ---------------------------------------------------------------------------
// 1. User info in a base URL
// ---------------------------------------------------------------------------

describe("a base URL with user info", () => {
  const password = "p@ss:w0rd-SECRET-42"
  const encoded = encodeURIComponent(password)
  const basic = `Basic ${Buffer.from(`me:${password}`).toString("base64")}`

  it.live("is sent as Basic auth with the user info out of the URL, and no span holds the password", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const { spans, tracer } = yield* recordSpans
      const base = `http://me:${encoded}@127.0.0.1:${server.port}`
      const viaUndici = Local.layer({ ...fast, baseUrl: base })
      const viaHttpClient = Local.layer({ ...fast, baseUrl: `${base}/v1` }).pipe(
        Layer.provide(HttpTransport.layerHttpClient),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      for (const layer of [viaUndici, viaHttpClient]) {
        expect((yield* Llm.complete(hi).pipe(Effect.provide(layer), Effect.withTracer(tracer))).content).toBe("ok")
        const text = yield* LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer), Effect.withTracer(tracer))
        expect(text.content).toBe("ok")
      }
      expect(server.requests.length).toBe(4)
      for (const request of server.requests) {
        expect(request.path).toBe("/v1/chat/completions")
        expect(request.headers.authorization).toBe(basic)
      }
      // the probes send it too
      const health = yield* Local.health({ baseUrl: base }).pipe(Effect.withTracer(tracer))
      expect(health.status).toBe("ok")
      expect(yield* Local.models({ baseUrl: base }).pipe(Effect.withTracer(tracer))).toEqual(["fake-model"])
      expect(server.requests.slice(4).map((request) => [request.path, request.headers.authorization])).toEqual([
        ["/health", basic],
        ["/v1/models", basic]
      ])
      // a server echoing the password back: it is redacted from the error
      server.setDefault({ kind: "status", status: 400, message: `bad credentials me:${password}` })
      const echoed = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(viaUndici), Effect.withTracer(tracer)))
      expect(echoed.message).toContain("[redacted]")
      expect(echoed.message).not.toContain(password)
      const httpSpans = spans.filter((span) => span.name.startsWith("http.client"))
      expect(httpSpans.length).toBeGreaterThanOrEqual(5)
      for (const span of spans) {
        const text = spanText(span)
        expect(text, span.name).not.toContain(password)
        expect(text, span.name).not.toContain(encoded)
      }
    })))

  it.live("error messages of the probes mask it as ***@", () =>
    Effect.gen(function*() {
      const base = `http://me:${encoded}@127.0.0.1:9`
      for (const probe of probes(base)) {
        const error = yield* Effect.flip(probe)
        expect(error._tag).toBe("LlmConnectionError")
        expect(error.message).toContain("http://***@127.0.0.1:9/")
        expect(error.message).not.toContain(encoded)
        expect(error.message).not.toContain("me:")
      }
    }))

  it.live("with a key sent as Authorization too, is refused naming the conflict; with x-api-key, both go", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const base = `http://me:${encoded}@127.0.0.1:${server.port}`
      const conflicting = [
        Local.layer({ ...fast, baseUrl: base, apiKey: Redacted.make(fakeKey) }),
        OpenAi.layer({ ...fast, baseUrl: `${base}/v1`, apiKey: Redacted.make(fakeKey) })
      ]
      for (const layer of conflicting) {
        const errors = yield* refusals(layer)
        expectRefused(errors, /user info.*API key|API key.*user info/)
        for (const error of errors) {
          expect(error.message).not.toContain(encoded)
          expect(error.message).not.toContain(fakeKey)
        }
      }
      expect(server.requests).toEqual([])
      const anthropic = Anthropic.layer({ ...fast, baseUrl: base, apiKey: Redacted.make(fakeKey) })
      yield* Llm.complete(hi).pipe(Effect.provide(anthropic))
      expect(server.requests[0]!.headers.authorization).toBe(basic)
      expect(server.requests[0]!.headers["x-api-key"]).toBe(fakeKey)
    })))

  it.live("over plain http to a remote host is refused unless allowed (layers and configuration)", () =>
    Effect.gen(function*() {
      // 192.0.2.0/24 is TEST-NET-1: never routed; without the refusal the call would time out
      const remote = `http://me:${encoded}@192.0.2.1:8080`
      const errors = yield* refusals(Local.layer({ baseUrl: remote, timeout: "300 millis", retry: { maxRetries: 0 } }))
      expectRefused(errors, /plain http/)
      for (const error of errors) expect(error.message).not.toContain(encoded)
      const message = yield* configError({ llm: { backend: "local", local: { base_url: remote } } })
      expect(message).toContain("allow_insecure_http")
      expect(message).toContain("http://***@192.0.2.1:8080")
      expect(message).not.toContain(encoded)
    }))
})

// ---------------------------------------------------------------------------
// 2. Header values a header cannot carry
// ---------------------------------------------------------------------------

describe("a header value with a character a header cannot carry", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["zero-width space", "\u200b"],
    ["NUL", "\u0000"],
    ["emoji", "\u{1f600}"],
    ["DEL", "\u007f"],
    ["non-ASCII letter", "é"]
  ]

  it.live("is refused when the layer is used, naming the option and never the value", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const [label, bad] of cases) {
        const key = `${fakeKey}${bad}`
        const layers: ReadonlyArray<readonly [string, Layer.Layer<Llm.Llm>, RegExp]> = [
          ["local key", Local.layer({ ...fast, baseUrl: server.url, apiKey: Redacted.make(key) }), /apiKey/],
          ["openai key", OpenAi.layer({ ...fast, baseUrl: `${server.url}/v1`, apiKey: Redacted.make(key) }), /apiKey/],
          ["anthropic key", Anthropic.layer({ ...fast, baseUrl: server.url, apiKey: Redacted.make(key) }), /apiKey/],
          [
            "openrouter title",
            OpenRouter.layer({
              ...fast,
              baseUrl: `${server.url}/api/v1`,
              apiKey: Redacted.make(fakeKey),
              title: `My app${bad}`
            }),
            /title/
          ],
          [
            "openai project",
            OpenAi.layer({
              ...fast,
              baseUrl: `${server.url}/v1`,
              apiKey: Redacted.make(fakeKey),
              project: `proj${bad}`
            }),
            /project/
          ]
        ]
        for (const [name, layer, option] of layers) {
          const errors = yield* refusals(layer)
          expectRefused(errors, option, `${label} in ${name}`)
          for (const error of errors) {
            expect(error.message).toMatch(/visible ASCII/)
            expect(error.message).not.toContain(fakeKey)
            expect(error.message).not.toContain(bad)
          }
        }
      }
      expect(server.requests).toEqual([])
      // a tab and a space are fine
      const fine = OpenRouter.layer({
        ...fast,
        baseUrl: `${server.url}/api/v1`,
        apiKey: Redacted.make(fakeKey),
        title: "My\tapp 2"
      })
      expect((yield* Llm.complete(hi).pipe(Effect.provide(fine))).content).toBe("ok")
      expect(server.requests[0]!.headers["x-title"]).toBe("My\tapp 2")
    })))

  it.effect("in a key from the environment is a ConfigError naming the variable, never the value", () =>
    Effect.gen(function*() {
      for (const [label, bad] of cases) {
        const message = yield* configError({ llm: { backend: "openai", openai: {} } }, {
          OPENAI_API_KEY: `${fakeKey}${bad}`
        })
        expect(message, label).toMatch(/llm\.openai\.api_key_env/)
        expect(message, label).toContain("OPENAI_API_KEY")
        expect(message, label).not.toContain(fakeKey)
      }
    }))
})

// ---------------------------------------------------------------------------
// 3. Base URLs that are not http(s) with a host
// ---------------------------------------------------------------------------

describe("a base URL that is not http(s) with a host", () => {
  it.live("is refused by the layers before anything is sent, suggesting http:// when the scheme is missing", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const hostPort = `127.0.0.1:${server.port}`
      const missing = yield* refusals(Local.layer({ ...fast, baseUrl: hostPort }))
      expectRefused(missing, new RegExp(`http://127\\.0\\.0\\.1:${server.port}`))
      const localhost = yield* refusals(Local.layer({ ...fast, baseUrl: "localhost:8080" }))
      expectRefused(localhost, /base URL.*http:\/\/localhost:8080/)
      for (
        const baseUrl of [
          `ftp://${hostPort}`,
          "file:///tmp/llm",
          `ws://${hostPort}`,
          "mailto:me@example.com",
          "https://"
        ]
      ) {
        expectRefused(yield* refusals(Local.layer({ ...fast, baseUrl })), /http:\/\/ or https:\/\//, baseUrl)
        expectRefused(
          yield* refusals(OpenAi.layer({ ...fast, baseUrl, apiKey: Redacted.make(fakeKey) })),
          /http:\/\/ or https:\/\//,
          baseUrl
        )
      }
      expect(server.requests).toEqual([])
    })))

  it.live("is refused by Local.health and Local.models with a typed error, not a defect", () =>
    Effect.gen(function*() {
      for (const baseUrl of ["127.0.0.1:8080", "localhost:8080", "ftp://127.0.0.1:8080", "not a url"]) {
        for (const probe of probes(baseUrl)) {
          const exit = yield* Effect.exit(probe)
          expect(Exit.isFailure(exit) && Cause.isFailType(exit.cause), `${baseUrl}: ${String(exit)}`).toBe(true)
          const error = yield* Effect.flip(probe)
          expect(error._tag).toBe("LlmInvalidRequestError")
          expect(error.message).toMatch(/http:\/\/ or https:\/\//)
        }
      }
      const error = yield* Effect.flip(Local.health({ baseUrl: "127.0.0.1:8080" }))
      expect(error.message).toContain("http://127.0.0.1:8080")
    }))

  it.effect("is a ConfigError in the configuration, with the suggestion", () =>
    Effect.gen(function*() {
      for (const base_url of ["localhost:8080", "ftp://localhost:8080", "file:///tmp/x"]) {
        expect(yield* configError({ llm: { backend: "local", local: { base_url } } })).toMatch(
          /llm\.local\.base_url: expected an http:\/\/ or https:\/\/ URL/
        )
      }
      expect(yield* configError({ llm: { backend: "local", local: { base_url: "localhost:8080" } } })).toContain(
        "http://localhost:8080"
      )
      expect(yield* configError({ llm: { backend: "local" } }, { LLM_LOCAL_BASE_URL: "127.0.0.1:8080" })).toContain(
        "http://127.0.0.1:8080"
      )
    }))
})

// ---------------------------------------------------------------------------
// 4. Duration typos
// ---------------------------------------------------------------------------

describe("a duration that is not one", () => {
  it.live("on a layer is an LlmInvalidRequestError on the call naming the option; nothing is sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const bad: ReadonlyArray<readonly [string, ProviderOptions]> = [
        ["timeout", { timeout: "30s" as Duration.DurationInput }],
        ["firstTokenTimeout", { firstTokenTimeout: Number.NaN }],
        ["idleTimeout", { idleTimeout: -5 }],
        ["timeout", { timeout: "-2 seconds" as Duration.DurationInput }],
        ["retry.initialDelay", { retry: { initialDelay: "2s" as Duration.DurationInput } }],
        ["retry.maxDelay", { retry: { maxDelay: "later" as Duration.DurationInput } }],
        ["retry.maxRetryAfter", { retry: { maxRetryAfter: -1 } }]
      ]
      for (const [option, options] of bad) {
        for (
          const layer of [
            Local.layer({ baseUrl: server.url, ...options }),
            Anthropic.layer({ baseUrl: server.url, ...options })
          ]
        ) {
          const exit = yield* Effect.exit(Llm.complete(hi).pipe(Effect.provide(layer)))
          expect(Exit.isFailure(exit) && Cause.isFailType(exit.cause), `${option}: ${String(exit)}`).toBe(true)
          const errors = yield* refusals(layer)
          expectRefused(errors, new RegExp(`${option.replace(".", "\\.")}.*duration`), option)
        }
      }
      expect(server.requests).toEqual([])
    })))

  it.live("on a call is an LlmInvalidRequestError naming the option; nothing is sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Local.layer({ ...fast, baseUrl: server.url })
      const bad: ReadonlyArray<readonly [string, Llm.CompletionOptions]> = [
        ["idleTimeout", { idleTimeout: "soon" as Duration.DurationInput }],
        ["timeout", { timeout: -1 }],
        ["firstTokenTimeout", { firstTokenTimeout: Number.NaN }]
      ]
      for (const [option, options] of bad) {
        const exit = yield* Effect.exit(LlmStream.collect(Llm.stream(hi, options)).pipe(Effect.provide(layer)))
        expect(Exit.isFailure(exit) && Cause.isFailType(exit.cause), `${option}: ${String(exit)}`).toBe(true)
        expectRefused(yield* refusals(layer, options), new RegExp(`${option}.*duration`), option)
      }
      expect(server.requests).toEqual([])
      // well-formed durations still go
      expect((yield* Llm.complete(hi, { idleTimeout: "5 seconds", timeout: 5000 }).pipe(Effect.provide(layer))).content)
        .toBe("ok")
    })))

  it.effect("in the configuration is a ConfigError, negative text included", () =>
    Effect.gen(function*() {
      expect(yield* configError({ llm: { backend: "local", retry: { initial_delay: "2s" } } })).toMatch(
        /llm\.retry\.initial_delay: expected a duration/
      )
      expect(yield* configError({ llm: { backend: "local", local: { timeout: "-5 seconds" } } })).toMatch(
        /llm\.local\.timeout: expected/
      )
      expect(yield* configError({ llm: { backend: "local", local: { idle_timeout: Number.NaN } } })).toMatch(
        /llm\.local\.idle_timeout: expected/
      )
    }))
})

// ---------------------------------------------------------------------------
// 5. Prototype names as backends
// ---------------------------------------------------------------------------

describe("a backend name that is a property of every object", () => {
  const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]

  it.effect("is the usual ConfigError, from the file or LLM_BACKEND / LLM_FALLBACK", () =>
    Effect.gen(function*() {
      for (const name of names) {
        expect(yield* configError({ llm: { backend: name } }), name).toMatch(
          /llm\.backend: expected one of local_gpt_oss/
        )
        expect(yield* configError({ llm: { backend: "local" } }, { LLM_BACKEND: name }), name).toMatch(
          /llm\.backend: expected one of/
        )
        expect(yield* configError({ llm: { backend: "local", local: {} } }, { LLM_FALLBACK: name }), name).toMatch(
          /llm\.fallback\[0\]: expected a configured backend/
        )
        // an override for it from the environment does not reach any object's prototype
        expect(
          yield* configError({ llm: { backend: name } }, { [`LLM_${name.toUpperCase()}_MODEL`]: "x" }),
          name
        ).toMatch(/llm\.backend: expected one of/)
        expect(({} as Record<string, unknown>).model).toBeUndefined()
      }
      // JSON can hold an own __proto__ key
      expect(yield* configError(JSON.parse(`{"llm":{"backend":"__proto__","__proto__":{"model":"x"}}}`))).toMatch(
        /llm\.backend: expected one of/
      )
    }))

  it.live("registered under such a name, its own section is used, never Object.prototype's", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const seen: Array<LlmConfig.BackendSection> = []
      const factory: LlmConfig.BackendFactory = (context) => {
        seen.push(context.section)
        return Local.layer({ baseUrl: server.url })
      }
      const layer = LlmConfig.layerFrom({ llm: { backend: "constructor" } }, {
        registry: new Map([["constructor", factory]])
      })
      expect((yield* Llm.complete(hi).pipe(Effect.provide(layer))).content).toBe("ok")
      expect(seen).toEqual([{}])
    })))
})

// ---------------------------------------------------------------------------
// 6. Absurd Retry-After values
// ---------------------------------------------------------------------------

describe("a Retry-After a server says", () => {
  it.live("is clamped to a finite bound that prints, and still fails fast", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Local.layer({ ...fast, baseUrl: server.url })
      const huge: ReadonlyArray<Record<string, string>> = [
        { "retry-after-ms": "1e308" },
        { "retry-after": "1e308" },
        { "retry-after-ms": "1e30" },
        { "retry-after": "Fri, 31 Dec 275759 23:59:59 GMT" }
      ]
      for (const headers of huge) {
        server.reset()
        server.setDefault({ kind: "status", status: 429, message: "slow down", headers })
        const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(layer)))
        expect(error._tag).toBe("LlmRateLimitError")
        const retryAfter = (error as { retryAfter?: Duration.Duration }).retryAfter!
        expect(Duration.toMillis(retryAfter)).toBeLessThanOrEqual(Duration.toMillis(Duration.days(365)))
        expect(Duration.format(retryAfter)).toMatch(/d/)
        expect(String(error)).toContain("slow down")
        expect(inspect(error)).toContain("slow down")
        expect(JSON.stringify(error)).toContain("slow down")
        expect(server.requests.length, JSON.stringify(headers)).toBe(1)
      }
    })))
})

// ---------------------------------------------------------------------------
// 7. Tool parameters that are not an object schema
// ---------------------------------------------------------------------------

describe("tool parameters", () => {
  it.live("that are not an object schema fail the call that offers them; nothing is sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Local.layer({ ...fast, baseUrl: server.url })
      const handler = () => Effect.succeed("done")
      const tools = [
        // @ts-expect-error: parameters must encode to an object
        Tool.make("echo_text", { description: "Echoes", parameters: Schema.String, handler }),
        // @ts-expect-error: parameters must encode to an object
        Tool.make("echo_any", { description: "Echoes", parameters: Schema.Unknown, handler }),
        Tool.make("either", {
          description: "One or the other",
          parameters: Schema.Union(Schema.Struct({ a: Schema.String }), Schema.Struct({ b: Schema.String })),
          handler
        })
      ]
      for (const tool of tools) {
        const errors = yield* refusals(layer, { tools: [tool.definition] })
        expectRefused(errors, new RegExp(`tool "${tool.name}".*"type": "object"`), tool.name)
        const viaToolkit = yield* Effect.flip(Toolkit.run(hi, Toolkit.make(tool)).pipe(Effect.provide(layer)))
        expect(viaToolkit._tag).toBe("LlmInvalidRequestError")
      }
      const handWritten = Message.toolDefinition({ name: "raw", description: "d", parameters: { type: "string" } })
      expectRefused(yield* refusals(layer, { tools: [handWritten] }), /tool "raw"/)
      expect(server.requests).toEqual([])
    })))

  it.live("from a Schema.Class or an empty Schema.Struct are sent as an object schema, definitions kept", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const layer = Local.layer({ ...fast, baseUrl: server.url })
      class City extends Schema.Class<City>("City")({ name: Schema.String }) {}
      class Trip extends Schema.Class<Trip>("Trip")({ from: City, to: City }) {}
      const tool = Tool.make("plan", { description: "Plans", parameters: Trip, handler: () => Effect.succeed("ok") })
      expect(tool.definition.parameters).toMatchObject({ type: "object", required: ["from", "to"] })
      expect(tool.definition.parameters).not.toHaveProperty("$ref")
      expect((yield* Llm.complete(hi, { tools: [tool.definition] }).pipe(Effect.provide(layer))).content).toBe("ok")
      const sent = (server.requests[0]!.body as { tools: Array<{ function: { parameters: Record<string, unknown> } }> })
        .tools[0]!
      expect(sent.function.parameters).toMatchObject({
        type: "object",
        properties: { from: { $ref: "#/$defs/City" }, to: { $ref: "#/$defs/City" } },
        $defs: { City: { type: "object" } }
      })
      // no arguments: an empty object schema, not JSONSchema's "an object or an array"
      const now = Tool.make("now", {
        description: "The time",
        parameters: Schema.Struct({}),
        handler: () => Effect.succeed("noon")
      })
      expect(now.definition.parameters).toEqual({ type: "object", properties: {} })
      expect((yield* Llm.complete(hi, { tools: [now.definition] }).pipe(Effect.provide(layer))).content).toBe("ok")
      expect(server.requests.length).toBe(2)
    })))
})

// ---------------------------------------------------------------------------
// 8. Fallback lists that repeat a backend, NaN temperature
// ---------------------------------------------------------------------------

describe("the configuration refuses", () => {
  const keys = { OPENAI_API_KEY: fakeKey, ANTHROPIC_API_KEY: fakeKey }

  it.effect("a fallback list naming the primary or a backend twice", () =>
    Effect.gen(function*() {
      expect(yield* configError({ llm: { backend: "local", fallback: ["local"], local: {} } })).toMatch(
        /llm\.fallback\[0\]: expected .*not the primary.*got "local"/
      )
      expect(
        yield* configError({
          llm: { backend: "local", fallback: ["openai", "anthropic", "openai"], local: {}, openai: {}, anthropic: {} }
        }, keys)
      ).toMatch(/llm\.fallback\[2\]: expected .*once.*got "openai"/)
      expect(
        yield* configError({ llm: { backend: "local", local: {}, openai: {} } }, {
          ...keys,
          LLM_FALLBACK: "openai,local"
        })
      ).toMatch(
        /llm\.fallback\[1\]: expected .*not the primary/
      )
    }))

  it.effect("a temperature that is not a number", () =>
    Effect.gen(function*() {
      for (const temperature of [Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(yield* configError({ llm: { backend: "local", local: { temperature } } })).toMatch(
          /llm\.local\.temperature: expected a number between 0 and 2/
        )
      }
    }))
})
