/**
 * Secrets and safety: the whole fault matrix runs with a recognisable fake
 * key, and everything the library produces (error messages, `String()`,
 * `JSON.stringify`, `util.inspect` and the encoded form of every error,
 * pretty-printed causes, every log line, every span with its attributes,
 * events and exit, every span the real OpenTelemetry SDK exported (content
 * capture on, so that messages and tool arguments are in them too), config
 * errors) is scanned for it. Also: the key never goes
 * over plain http to a host that is not loopback unless allowed, and header
 * values with line breaks are refused before anything is sent.
 */
import { NodeHttpClient } from "@effect/platform-node"
import type * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { networkInterfaces } from "node:os"
import { inspect } from "node:util"
import * as LlmConfig from "../src/Config.js"
import { make as makeContext } from "../src/Context.js"
import * as Conversation from "../src/Conversation.js"
import { isLlmError, LlmError } from "../src/errors.js"
import { fromProviderFailure, responseError } from "../src/internal/errorFactory.js"
import * as Anthropic from "../src/layers/Anthropic.js"
import * as Fallback from "../src/layers/Fallback.js"
import * as Local from "../src/layers/Local.js"
import * as OpenAi from "../src/layers/OpenAi.js"
import * as OpenRouter from "../src/layers/OpenRouter.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import type { ProviderOptions } from "../src/Provider.js"
import * as LlmStream from "../src/Stream.js"
import * as Telemetry from "../src/Telemetry.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { recordLogs } from "./reliability/probes.js"
import { allBackends, backends, fakeKey, viaHttpClient } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { withSdk } from "./support/otel.js"
import { recordSpans } from "./support/spans.js"

/** The part of the fake key no masking would keep: finding it anywhere is a leak. */
const secretCore = fakeKey.slice("sk-test-".length)
const hi = [Message.user("Hi")]

/** Every rendering of a value someone may print or ship somewhere. */
const renderings = (value: unknown): Array<string> => {
  const out = [String(value), inspect(value, { depth: 20, showHidden: true })]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch (error) {
    out.push(String(error))
  }
  if (value instanceof Error) out.push(value.message, value.stack ?? "", value.toString())
  if (isLlmError(value)) out.push(JSON.stringify(Schema.encodeSync(LlmError)(value)))
  return out
}

/** Collects everything produced, and checks it for the key. */
class Evidence {
  readonly items: Array<{ readonly where: string; readonly text: string }> = []
  readonly errorTags = new Set<string>()

  add(where: string, value: unknown): void {
    for (const text of renderings(value)) this.items.push({ where, text })
  }

  addExit(where: string, exit: Exit.Exit<unknown, unknown>): void {
    if (Exit.isSuccess(exit)) return this.add(`${where} (result)`, exit.value)
    this.items.push({ where: `${where} (cause)`, text: Cause.pretty(exit.cause) })
    this.add(`${where} (cause)`, exit.cause)
    for (const failure of Cause.failures(exit.cause)) {
      if (typeof failure === "object" && failure !== null && "_tag" in failure) this.errorTags.add(String(failure._tag))
      this.add(`${where} (error)`, failure)
    }
    for (const defect of Cause.defects(exit.cause)) this.add(`${where} (defect)`, defect)
  }

  /** Where the key was found, if anywhere. */
  leaks(): Array<string> {
    return this.items
      .filter((item) => item.text.includes(secretCore))
      .map((item) =>
        `${item.where}: ${
          item.text.slice(Math.max(0, item.text.indexOf(secretCore) - 200), item.text.indexOf(secretCore) + 60)
        }`
      )
  }
}

/** An exported span as an exporter has it: name, kind, attributes, events, status, links, resource, parent. */
const exportedText = (span: ReadableSpan): string => {
  const fields = {
    name: span.name,
    kind: span.kind,
    attributes: span.attributes,
    events: span.events,
    status: span.status,
    links: span.links,
    resource: span.resource.attributes,
    parent: span.parentSpanContext
  }
  return [inspect(fields, { depth: 20 }), JSON.stringify(fields)].join("\n")
}

/** Every HTTP client span: the default transport's and the platform's (both `http.client POST`). */
const isHttpSpan = (span: Tracer.Span) => span.name.startsWith("http.client")

/** The platform's own HTTP client spans, told apart by the (redacted) request headers they record. */
const isPlatformHttpSpan = (span: Tracer.Span) =>
  isHttpSpan(span) && [...span.attributes.keys()].some((key) => key.startsWith("http.request.header."))

/**
 * A span as text: name, attributes, events, links and how it ended. A failure is rendered as exporters render it
 * (`Cause.pretty`, `Cause.prettyErrors`), and, with `whole`, also with `util.inspect` and `JSON.stringify` of the
 * cause. A success's value is not printed, as exporters do not (printing an HTTP response starts reading its body).
 */
const spanText = (span: Tracer.Span, whole: boolean): string => {
  const exit = span.status._tag === "Ended" ? span.status.exit : undefined
  const failure = (cause: Cause.Cause<unknown>) =>
    [
      Cause.pretty(cause),
      ...Cause.prettyErrors(cause).map((error) => `${error.message}\n${error.stack ?? ""}`),
      ...(whole ? [inspect(cause, { depth: 20 }), JSON.stringify(cause)] : [])
    ].join("\n")
  const status = exit === undefined ? "running" : Exit.isSuccess(exit) ? "ok" : failure(exit.cause)
  const events = "events" in span ? inspect((span as { events: unknown }).events, { depth: 20 }) : ""
  return [span.name, inspect([...span.attributes], { depth: 20 }), events, inspect(span.links, { depth: 5 }), status]
    .join("\n")
}

const fast: ProviderOptions = {
  retry: { maxRetries: 1, initialDelay: "1 millis", maxDelay: "2 millis" },
  maxResponseBytes: 64 * 1024
}

/** Faults, each run as a whole request and as a stream. */
const faults: ReadonlyArray<readonly [string, FakeProvider.Script, Llm.CompletionOptions?]> = [
  ...[400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529].map((status) =>
    [
      `HTTP ${status}`,
      {
        kind: "status",
        status,
        // what OpenAI really says: the key masked, as providers do
        message: status === 401 ? "Incorrect API key provided: sk-test-**************6789." : `status ${status}`,
        ...(status === 401 ? { code: "invalid_api_key" } : {})
      }
    ] as const
  ),
  ["502 HTML page", { kind: "status", status: 502, body: "<html><body><h1>502 Bad Gateway</h1></body></html>" }],
  ["302 redirect", { kind: "status", status: 302, body: "", headers: { location: "http://127.0.0.1:9/elsewhere" } }],
  ["reset before the response", { kind: "reset" }],
  ["reset mid-stream", { kind: "reply", text: "some text that breaks", resetAfterEvents: 5 }],
  ["never answers", { kind: "hang" }, { timeout: "100 millis", firstTokenTimeout: "100 millis" }],
  ["headers then nothing", { kind: "headersOnly" }, { timeout: "100 millis", firstTokenTimeout: "100 millis" }],
  [
    "stalls with keep-alives",
    { kind: "reply", text: "one two three four", stallAfterEvents: 5, stallKeepAliveMs: 10 },
    {
      idleTimeout: "100 millis",
      timeout: "300 millis"
    }
  ],
  ["malformed chunk", { kind: "reply", text: "abc def ghi", malformedAfterEvents: 4 }],
  ["cut off", { kind: "reply", text: "cut off here", omitTerminator: true }],
  ["in-band overloaded", {
    kind: "reply",
    text: "x",
    inBandError: { afterEvents: 0, type: "overloaded_error", message: "Overloaded" }
  }],
  ["in-band rate limit", {
    kind: "reply",
    text: "x",
    inBandError: { afterEvents: 4, type: "rate_limit_error", message: "slow down" }
  }],
  ["in-band invalid request", {
    kind: "reply",
    text: "x",
    inBandError: { afterEvents: 1, type: "invalid_request_error", message: "bad" }
  }],
  ["text/html on a 200", { kind: "raw", headers: { "content-type": "text/html" }, chunks: ["<html>login</html>"] }],
  ["not JSON", { kind: "raw", headers: { "content-type": "application/json" }, chunks: ["{not json"] }],
  ["invalid UTF-8", {
    kind: "raw",
    chunks: [Uint8Array.of(0x64, 0x61, 0x74, 0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a, 0x0a)]
  }],
  ["larger than the limit", {
    kind: "flood",
    chunk: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"
  }],
  ["{error: text} echoing the key", {
    kind: "status",
    status: 404,
    body: JSON.stringify({ error: `no model for key ${fakeKey}` })
  }]
]

describe("secrets: the fake key never appears in anything produced", () => {
  it.live(
    "the whole fault matrix, every backend, fallback, tools and conversations",
    () =>
      withSdk((sdk) =>
        Effect.scoped(Effect.gen(function*() {
          const evidence = new Evidence()
          const { layer: logs, logs: lines } = recordLogs()
          // the SDK's tracer, each span it makes also kept as Effect sees it
          const { spans, tracer } = yield* recordSpans
          const observe = <A, E>(where: string, effect: Effect.Effect<A, E>) =>
            Effect.exit(effect).pipe(
              Effect.withTracer(tracer),
              Telemetry.withContentCapture,
              Effect.provide(logs),
              Effect.tap((exit) => Effect.sync(() => evidence.addExit(where, exit)))
            )

          yield* Effect.forEach(allBackends, (backend) =>
            Effect.gen(function*() {
              const server = yield* FakeProvider.make
              const layer = backend.layer(server.url, fast)
              for (const [label, script, options] of faults) {
                server.setDefault(script)
                yield* observe(
                  `${backend.name} ${label} complete`,
                  Llm.complete(hi, options).pipe(Effect.provide(layer))
                )
                yield* observe(
                  `${backend.name} ${label} stream`,
                  LlmStream.collect(Llm.stream(hi, options)).pipe(Effect.provide(layer))
                )
              }
              server.setDefault({ kind: "reply", text: "fine" })
              yield* observe(`${backend.name} success`, Llm.complete(hi).pipe(Effect.provide(layer)))
              yield* observe(
                `${backend.name} refused before sending`,
                Llm.complete(hi, { temperature: 7 }).pipe(Effect.provide(layer))
              )
              yield* observe(
                `${backend.name} nothing listens`,
                Llm.complete(hi).pipe(Effect.provide(backend.layer("http://127.0.0.1:9", fast)))
              )
              // a tool loop and a conversation that fail half-way
              const kit = Toolkit.make(Tool.make("lookup", {
                description: "Looks up",
                parameters: Schema.Struct({ key: Schema.String }),
                handler: ({ key }) => Effect.fail(new Error(`no such key ${key}`))
              }))
              server.enqueue(
                { kind: "reply", toolCalls: [{ id: "call_1", name: "lookup", arguments: { key: "k" } }] },
                { kind: "status", status: 500 },
                { kind: "status", status: 500 }
              )
              yield* observe(`${backend.name} tool loop`, Toolkit.run(hi, kit).pipe(Effect.provide(layer)))
              server.setDefault({
                kind: "status",
                status: 401,
                message: "Incorrect API key provided: sk-test-**************6789."
              })
              yield* observe(
                `${backend.name} conversation`,
                Effect.flatMap(
                  Conversation.make(makeContext({ systemMessage: "Be brief." })),
                  (conversation) =>
                    Effect.zip(
                      Effect.exit(conversation.send("Hello")),
                      Effect.exit(Stream.runDrain(conversation.sendStream("Hello again")))
                    )
                ).pipe(Effect.scoped, Effect.provide(layer))
              )
              // the service itself, and the layer value, as a user might print them
              evidence.add(`${backend.name} layer`, layer)
            }), { concurrency: "unbounded", discard: true })

          // a fallback chain whose backends all fail: it logs each fallback
          const [primary, secondary] = yield* Effect.all([FakeProvider.make, FakeProvider.make])
          primary.setDefault({ kind: "status", status: 503, message: "primary down" })
          secondary.setDefault({ kind: "status", status: 401, message: "bad key" })
          const chain = Fallback.layer([
            Local.layer({ ...fast, baseUrl: primary.url, apiKey: Redacted.make(fakeKey) }),
            Anthropic.layer({ ...fast, baseUrl: secondary.url, apiKey: Redacted.make(fakeKey) })
          ])
          yield* observe("fallback complete", Llm.complete(hi).pipe(Effect.provide(chain)))
          yield* observe("fallback stream", LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(chain)))
          yield* observe(
            "fallback service",
            Effect.flatMap(Llm.Llm, (service) => Effect.sync(() => inspect(service, { depth: 10, showHidden: true })))
              .pipe(
                Effect.provide(chain)
              )
          )

          for (const line of lines) evidence.items.push({ where: `log ${line.level}`, text: line.formatted })
          for (const span of spans) {
            evidence.items.push({ where: `span ${span.name}`, text: spanText(span, !isPlatformHttpSpan(span)) })
          }
          const exported = sdk.spans()
          for (const span of exported) {
            evidence.items.push({ where: `exported span ${span.name}`, text: exportedText(span) })
          }

          // the scan covered what it claims to: errors of every kind, logs, and the HTTP client's request spans
          expect([...evidence.errorTags].sort()).toEqual([
            "LlmAuthenticationError",
            "LlmConnectionError",
            "LlmInvalidRequestError",
            "LlmProviderError",
            "LlmRateLimitError",
            "LlmResponseError",
            "LlmTimeoutError"
          ])
          expect(lines.some((line) => line.message.includes("falling back"))).toBe(true)
          const platform = spans.filter(isPlatformHttpSpan)
          const own = spans.filter((span) => isHttpSpan(span) && !isPlatformHttpSpan(span))
          expect(platform.length).toBeGreaterThan(30)
          expect(own.length).toBeGreaterThan(100)
          const headerNames = new Set(platform.flatMap((span) => [...span.attributes.keys()]))
          expect(headerNames.has("http.request.header.authorization")).toBe(true)
          expect(headerNames.has("http.request.header.x-api-key")).toBe(true)
          // the default transport's spans carry the method, URL and status, never a header
          expect(new Set(own.flatMap((span) => [...span.attributes.keys()]))).toEqual(
            new Set(["http.request.method", "url.full", "server.address", "server.port", "http.response.status_code"])
          )
          expect(evidence.items.length).toBeGreaterThan(1000)
          // every span made was ended and exported: the library's own among them, content captured
          expect(exported.length).toBe(spans.length)
          const names = new Set(exported.map((span) => span.name.split(" ")[0]))
          expect([...names].filter((name) => name !== "http.client").sort()).toEqual([
            "chat",
            "effect_llm.fallback",
            "execute_tool"
          ])
          expect(exported.some((span) => "gen_ai.input.messages" in span.attributes)).toBe(true)
          expect(exported.some((span) => "gen_ai.tool.call.arguments" in span.attributes)).toBe(true)
          expect(exported.some((span) => span.events.some((event) => event.name === "effect_llm.retry"))).toBe(true)

          expect(evidence.leaks()).toEqual([])
        }))
      ),
    // the matrix is long: 5 to 16 s on two cores, more when the machine is loaded
    120_000
  )

  // A server or proxy that echoes the key back in its error text (a debugging gateway, a hostile endpoint) must not
  // get it copied into LlmError.message: HttpProvider puts the credentials in its ErrorContext's `secrets`.
  it.live("a key echoed back by the server is redacted from the error", () =>
    Effect.scoped(Effect.gen(function*() {
      const evidence = new Evidence()
      for (const backend of backends) {
        const server = yield* FakeProvider.make
        const layer = backend.layer(server.url, { retry: { maxRetries: 0 } })
        const echoes: ReadonlyArray<FakeProvider.Script> = [
          { kind: "status", status: 401, message: `Incorrect API key provided: ${fakeKey}`, code: "invalid_api_key" },
          { kind: "status", status: 502, body: `<html><pre>Authorization: Bearer ${fakeKey}</pre></html>` },
          {
            kind: "reply",
            text: "x",
            inBandError: { afterEvents: 0, type: "overloaded_error", message: `key ${fakeKey} is overloaded` }
          },
          // echoed where the quote is cut: redacted before the cut, so not even its first characters show
          { kind: "status", status: 502, body: `Authorization: Bearer ${"x".repeat(470)}${fakeKey}${"y".repeat(100)}` },
          {
            kind: "status",
            status: 400,
            body: JSON.stringify({ detail: [{ loc: ["header"], msg: `${"x".repeat(480)}${fakeKey}` }] })
          },
          {
            kind: "raw",
            headers: { "content-type": "application/json" },
            chunks: [`{not json ${"x".repeat(180)}${fakeKey}`]
          },
          { kind: "raw", chunks: [`data: {not json ${"x".repeat(170)}${fakeKey}\n\n`] },
          // a proxy that echoes the Authorization header into the request id (see the UPSTREAM test below for the
          // platform's HttpClient, whose span records response headers as they came)
          { kind: "reply", text: "fine", headers: { "x-request-id": `Bearer ${fakeKey}` } },
          {
            kind: "reply",
            text: "some text that breaks",
            resetAfterEvents: 5,
            headers: { "x-request-id": `Bearer ${fakeKey}` }
          }
        ]
        for (const script of echoes) {
          server.setDefault(script)
          evidence.addExit(`${backend.name} complete`, yield* Effect.exit(Llm.complete(hi).pipe(Effect.provide(layer))))
          evidence.addExit(
            `${backend.name} stream`,
            yield* Effect.exit(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
          )
        }
      }
      expect(evidence.leaks()).toEqual([])
      // nor any part of it: a key cut before it was redacted would leave "sk-test-SECRET-…" behind
      expect(evidence.items.filter((item) => item.text.includes("SECRET")).map((item) => item.where)).toEqual([])
    })))

  it("errors built with the key among the context's secrets redact it from provider text", () => {
    const context = { provider: "openai", model: "gpt-4o", secrets: [`Bearer ${fakeKey}`, fakeKey] }
    const echoed = fromProviderFailure(context, {
      status: 401,
      message: `Incorrect API key provided: ${fakeKey}`,
      code: fakeKey
    })
    const page = fromProviderFailure(context, { status: 502, message: `<pre>Authorization: Bearer ${fakeKey}</pre>` })
    const body = responseError(context, `the response is not JSON: {"key":"${fakeKey}"`, 200)
    for (const error of [echoed, page, body]) {
      for (const text of renderings(error)) expect(text).not.toContain(secretCore)
      expect(error.message).toContain("[redacted]")
    }
    expect(echoed._tag).toBe("LlmAuthenticationError")
  })

  // UPSTREAM (@effect/platform; see docs/RELIABILITY.md): when a request fails in transport (refused, reset), the
  // platform's own `http.client` span ends with a cause holding its RequestError, whose `request.headers` are not
  // redacted by `util.inspect` or `JSON.stringify` (Cause.pretty and Cause.prettyErrors, what exporters and loggers
  // print, are clean, and the library's own errors drop that cause). Remove `.fails` if the library stops exposing it
  // (e.g. by turning the platform span off with HttpClient.withTracerDisabledWhen and opening its own).
  // It concerns `HttpTransport.layerHttpClient` only: the default transport opens its own span, tested below.
  it.live.fails("the platform's http.client span, printed whole after a transport failure, does not show the key", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordSpans
      for (const backend of viaHttpClient) {
        yield* Effect.exit(
          Llm.complete(hi).pipe(
            Effect.provide(backend.layer("http://127.0.0.1:9", { retry: { maxRetries: 0 } })),
            Effect.withTracer(tracer)
          )
        )
      }
      const texts = spans.filter(isPlatformHttpSpan).map((span) => spanText(span, true))
      expect(texts.length).toBe(2)
      expect(texts.filter((text) => text.includes(secretCore))).toEqual([])
    }))

  // @effect/platform's `http.client` span records every response header as `http.response.header.<name>`, redacting
  // only the names in `Headers.currentRedactedNames` (authorization, cookie, ...): `HttpTransport.layerHttpClient`
  // adds the request-id headers to them, so a proxy that echoes the key into `x-request-id` is not recorded there.
  it.live("the platform's http.client span does not record a response header that echoes the key", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = yield* recordSpans
      const server = yield* FakeProvider.make
      server.setDefault({ kind: "reply", text: "fine", headers: { "x-request-id": `Bearer ${fakeKey}` } })
      for (const backend of viaHttpClient) {
        const result = yield* Llm.complete(hi).pipe(
          Effect.provide(backend.layer(server.url, { retry: { maxRetries: 0 } })),
          Effect.withTracer(tracer)
        )
        expect(result.metadata.requestId).toBe("Bearer [redacted]")
      }
      const texts = spans.filter(isPlatformHttpSpan).map((span) => spanText(span, false))
      expect(texts.length).toBe(2)
      expect(texts.filter((text) => text.includes(secretCore))).toEqual([])
    })))

  it.live("the default transport's http.client span, printed whole after a transport failure, does not show the key", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordSpans
      for (const backend of backends) {
        yield* Effect.exit(
          Llm.complete(hi).pipe(
            Effect.provide(backend.layer("http://127.0.0.1:9", { retry: { maxRetries: 0 } })),
            Effect.withTracer(tracer)
          )
        )
      }
      const http = spans.filter(isHttpSpan)
      expect(http.map((span) => span.status._tag)).toEqual(["Ended", "Ended", "Ended", "Ended"])
      const texts = http.map((span) => spanText(span, true))
      expect(texts.every((text) => text.includes("ECONNREFUSED"))).toBe(true)
      expect(texts.filter((text) => text.includes(secretCore))).toEqual([])
    }))

  it.effect("configuration errors never echo the key", () =>
    Effect.gen(function*() {
      const evidence = new Evidence()
      const vars = new Map([
        ["OPENAI_API_KEY", fakeKey],
        ["ANTHROPIC_API_KEY", fakeKey],
        ["OPENROUTER_API_KEY", fakeKey],
        ["LLM_LOCAL_API_KEY", fakeKey],
        ["MY_KEY", fakeKey]
      ])
      const configs: ReadonlyArray<unknown> = [
        { llm: { backend: "openai", openai: { base_url: "http://api.example.com/v1" } } },
        { llm: { backend: "openai", openai: { base_url: `http://user:${fakeKey}@api.example.com/v1` } } },
        { llm: { backend: "openai", openai: { base_url: `ftp://user:${fakeKey}@api.example.com/v1` } } },
        { llm: { backend: "anthropic", anthropic: { api_key_env: fakeKey } } },
        { llm: { backend: "openrouter", openrouter: { api_key_env: "NOT_SET_ANYWHERE" } } },
        { llm: { backend: "openai", openai: { model: "gpt-4o\r\nX-Evil: 1" } } },
        { llm: { backend: "openai", openai: { timeout: "soon" } } },
        { llm: { backend: "openai", openai: { temperature: 9 } } },
        { llm: { backend: "openai", openai: { api_key_env: "MY_KEY", max_tokens: -1 } } },
        { llm: { backend: "nope" } },
        { llm: { backend: "openai", fallback: ["anthropic"] } },
        { llm: { backend: "openai", retry: { max_retries: -1 } } },
        { llm: { backend: "local", local: { base_url: "not a url" } } },
        "not an object"
      ]
      for (const [i, config] of configs.entries()) {
        const exit = yield* Effect.exit(
          LlmConfig.make(config as LlmConfig.LlmConfigInput, { source: "secrets.yaml" }).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(vars))
          )
        )
        expect(Exit.isFailure(exit), `config ${i} must be refused`).toBe(true)
        evidence.addExit(`config ${i}`, exit)
      }
      // the layers that read the key from the environment, without it
      for (const layer of [OpenAi.layerConfig(), Anthropic.layerConfig(), OpenRouter.layerConfig()]) {
        const exit = yield* Effect.exit(
          Layer.build(layer.pipe(Layer.provide(NodeHttpClient.layerUndici))).pipe(
            Effect.scoped,
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
          )
        )
        expect(Exit.isFailure(exit)).toBe(true)
        evidence.addExit("layerConfig", exit)
      }
      expect(evidence.leaks()).toEqual([])
      // a key pasted where the variable's name goes is refused without being repeated
      const pasted = evidence.items.find((item) => item.where.startsWith("config 3"))
      expect(pasted?.text).toContain("not the key itself")
    }))
})

// ---------------------------------------------------------------------------
// Plain http to a host that is not loopback
// ---------------------------------------------------------------------------

/** This machine's first non-loopback IPv4 address, if it has one. */
const remoteAddress = Object.values(networkInterfaces()).flat().find((address) =>
  address !== undefined && address.family === "IPv4" && !address.internal
)?.address

describe("the key over plain http", () => {
  it.live.skipIf(remoteAddress === undefined)(
    "is refused to a host that is not loopback, unless allowed",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => FakeProvider.start({ host: remoteAddress! })),
          (s) => Effect.promise(() => s.close())
        )
        const url = server.url
        const layers: ReadonlyArray<
          readonly [string, (allow: boolean) => Layer.Layer<Llm.Llm, never, HttpClient.HttpClient>]
        > = [
          [
            "openai",
            (allow) => OpenAi.layer({ baseUrl: `${url}/v1`, apiKey: Redacted.make(fakeKey), allowInsecureHttp: allow })
          ],
          [
            "anthropic",
            (allow) => Anthropic.layer({ baseUrl: url, apiKey: Redacted.make(fakeKey), allowInsecureHttp: allow })
          ],
          [
            "openrouter",
            (allow) =>
              OpenRouter.layer({ baseUrl: `${url}/api/v1`, apiKey: Redacted.make(fakeKey), allowInsecureHttp: allow })
          ],
          ["local", (allow) => Local.layer({ baseUrl: url, apiKey: Redacted.make(fakeKey), allowInsecureHttp: allow })]
        ]
        for (const [name, make] of layers) {
          const refused = make(false).pipe(Layer.provide(NodeHttpClient.layerUndici))
          const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(refused)))
          expect(error._tag, name).toBe("LlmInvalidRequestError")
          expect(error.message).toContain("plain http")
          expect(error.message).not.toContain(secretCore)
          const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(refused)))
          expect(streamed._tag).toBe("LlmInvalidRequestError")
        }
        expect(server.requests).toEqual([])
        // allowed explicitly: it goes, key and all
        for (const [name, make] of layers) {
          const result = yield* Llm.complete(hi).pipe(
            Effect.provide(make(true).pipe(Layer.provide(NodeHttpClient.layerUndici)))
          )
          expect(result.content, name).toBe("ok")
        }
        expect(server.requests.length).toBe(4)
        // a local server with no key may be anywhere on the network
        const keyless = Local.layer({ baseUrl: url }).pipe(Layer.provide(NodeHttpClient.layerUndici))
        expect((yield* Llm.complete(hi).pipe(Effect.provide(keyless))).content).toBe("ok")
      }))
  )

  it.live.skipIf(remoteAddress === undefined)(
    "the configuration refuses it with a ConfigError, and allow_insecure_http allows it",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => FakeProvider.start({ host: remoteAddress! })),
          (s) => Effect.promise(() => s.close())
        )
        const env = Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", fakeKey]])))
        const config = (allow?: boolean) => ({
          llm: {
            backend: "openai",
            openai: { base_url: `${server.url}/v1`, ...(allow === undefined ? {} : { allow_insecure_http: allow }) }
          }
        })
        for (const refused of [config(), config(false)]) {
          const error = yield* Effect.flip(LlmConfig.make(refused).pipe(env))
          expect(String(error)).toContain("allow_insecure_http")
          expect(String(error)).not.toContain(secretCore)
        }
        // the same refusal when the URL comes from the environment override
        const overridden = yield* Effect.flip(
          LlmConfig.make({ llm: { backend: "openai" } }).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(
              new Map([["OPENAI_API_KEY", fakeKey], ["LLM_OPENAI_BASE_URL", `${server.url}/v1`]])
            ))
          )
        )
        expect(String(overridden)).toContain("allow_insecure_http")
        expect(server.requests).toEqual([])
        const layer = yield* LlmConfig.make(config(true)).pipe(env)
        const result = yield* Llm.complete(hi).pipe(
          Effect.provide(layer.pipe(Layer.provide(NodeHttpClient.layerUndici))),
          env
        )
        expect(result.content).toBe("ok")
        expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${fakeKey}`)
      }))
  )

  it.live("loopback in every spelling is allowed over plain http", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      for (const host of ["127.0.0.1", "localhost"]) {
        const layer = OpenAi.layer({ baseUrl: `http://${host}:${server.port}/v1`, apiKey: Redacted.make(fakeKey) })
          .pipe(
            Layer.provide(NodeHttpClient.layerUndici)
          )
        expect((yield* Llm.complete(hi).pipe(Effect.provide(layer))).content).toBe("ok")
      }
      expect(server.requests.length).toBe(2)
    })))
})

// ---------------------------------------------------------------------------
// Header values with line breaks
// ---------------------------------------------------------------------------

describe("header values with line breaks are refused before anything is sent", () => {
  it.live("OpenRouter referer and title, and a model name, with CR/LF", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* FakeProvider.make
      const openRouter = (options: OpenRouter.OpenRouterOptions) =>
        OpenRouter.layer({ baseUrl: `${server.url}/api/v1`, apiKey: Redacted.make(fakeKey), ...options }).pipe(
          Layer.provide(NodeHttpClient.layerUndici)
        )
      const bad: ReadonlyArray<Layer.Layer<Llm.Llm>> = [
        openRouter({ referer: "https://example.test\r\nX-Injected: 1" }),
        openRouter({ referer: "https://example.test\nX-Injected: 1" }),
        openRouter({ title: "My app\rX-Injected: 1" }),
        openRouter({ title: "My app\r\n\r\nGET / HTTP/1.1" }),
        openRouter({ model: "openai/gpt-4o\r\nX-Injected: 1" }),
        OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: Redacted.make(fakeKey), model: "gpt-4o\nX-Injected: 1" })
          .pipe(
            Layer.provide(NodeHttpClient.layerUndici)
          ),
        // a key with a line break in it (a pasted file with its newline in the middle)
        OpenAi.layer({ baseUrl: `${server.url}/v1`, apiKey: Redacted.make(`${fakeKey}\r\nX-Injected: 1`) }).pipe(
          Layer.provide(NodeHttpClient.layerUndici)
        )
      ]
      for (const [i, layer] of bad.entries()) {
        const error = yield* Effect.flip(Llm.complete(hi).pipe(Effect.provide(layer)))
        expect(error._tag, `case ${i}`).toBe("LlmInvalidRequestError")
        expect(error.message).toContain("nothing was sent")
        expect(error.message).not.toContain(secretCore)
        const streamed = yield* Effect.flip(LlmStream.collect(Llm.stream(hi)).pipe(Effect.provide(layer)))
        expect(streamed._tag).toBe("LlmInvalidRequestError")
      }
      expect(server.requests).toEqual([])
      // well-formed values go through
      const good = openRouter({ referer: "https://example.test", title: "My app" })
      expect((yield* Llm.complete(hi).pipe(Effect.provide(good))).content).toBe("ok")
      expect(server.requests[0]!.headers["http-referer"]).toBe("https://example.test")
      expect(server.requests[0]!.headers["x-title"]).toBe("My app")
    })))
})
