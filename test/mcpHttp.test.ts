/**
 * MCP over Streamable HTTP against a server built with the SDK's server
 * classes (test/support/mcpHttpServer.ts): nested schemas checked before the
 * call, error results, a tool list that changes mid-turn, barge-in and
 * timeouts that the server sees as cancellations, a server that dies
 * mid-call and is reconnected, headers, and the session ended on close.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Conversation from "../src/Conversation.js"
import * as McpToolkit from "../src/McpToolkit.js"
import * as Message from "../src/Message.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { eventually, everything } from "./support/mcp.js"
import * as McpHttpServer from "./support/mcpHttpServer.js"

const withServer = Effect.acquireRelease(Effect.promise(McpHttpServer.start), (server) => Effect.promise(server.close))

const http = (server: McpHttpServer.McpHttpServer, overrides: Partial<McpToolkit.HttpServer> = {}) => ({
  name: "shop",
  url: server.url,
  ...overrides
})

const order = {
  customer: { name: "Ada", address: { city: "Oslo", zip: "0150" } },
  items: [{ sku: "tea", quantity: 2 }],
  gift_note: "enjoy"
}

describe("McpToolkit over Streamable HTTP", () => {
  it.live("checks nested arguments against the server's schema before calling, and maps renamed keys back", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      const placeOrder = toolkit.tools.get("place_order")!
      expect(Object.keys(placeOrder.definition.parameters.properties as object)).toEqual([
        "customer",
        "items",
        "gift_note"
      ])
      expect(yield* placeOrder.run(order)).toBe(
        "{\"orderId\":\"o-1\",\"lines\":1,\"note\":\"enjoy\"}\norder placed for Ada"
      )
      expect(server.calls.at(-1)).toMatchObject({
        tool: "place_order",
        args: { customer: order.customer, items: order.items, "gift note": "enjoy" }
      })
      const before = server.calls.length
      const invalid = yield* Effect.flip(placeOrder.run({
        customer: { name: "Ada", address: { zip: "x" } },
        items: [{ sku: "tea", quantity: 0 }]
      }))
      expect(invalid.reason).toBe("invalid_arguments")
      expect(invalid.message).toContain("must have required property 'city'")
      expect(invalid.message).toContain("must match pattern")
      expect(invalid.message).toContain("must be >= 1")
      expect(yield* Effect.flip(placeOrder.run({ customer: order.customer, items: [] }))).toMatchObject({
        reason: "invalid_arguments"
      })
      expect(server.calls.length).toBe(before)
    })))

  it.live("leaves out a tool whose schema is not JSON Schema, with a warning, and offers the rest", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === LogLevel.Warning) warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const names = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* withServer
        const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
        return toolkit.definitions.map((d) => d.name)
      })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(names).not.toContain("broken_schema")
      expect(names).toContain("echo")
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(
        /^MCP server shop: tool broken_schema left out: tool broken_schema: its parameters schema /
      )
    }))

  it.live("with failOnToolError the loop fails with the typed error instead", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const provider = yield* FakeProvider.make
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      provider.enqueue({ kind: "reply", toolCalls: [{ id: "c1", name: "fail", arguments: {} }] })
      const error = yield* Toolkit.run([Message.user("fail")], toolkit, { failOnToolError: true }).pipe(
        Effect.provide(backends[0]!.layer(provider.url)),
        Effect.flip
      )
      expect(error).toMatchObject({
        _tag: "ToolExecutionError",
        toolCallId: "c1",
        name: "fail",
        reason: "handler_failed",
        message: "the flux capacitor is out of flux"
      })
    })))

  it.live("a Conversation turn runs MCP tools and records them in the history", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const provider = yield* FakeProvider.make
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      provider.enqueue(
        { kind: "reply", toolCalls: [{ id: "c1", name: "echo", arguments: { text: "hi" } }] },
        { kind: "reply", text: "It said hi." }
      )
      const history = yield* Effect.gen(function*() {
        const conversation = yield* Conversation.Conversation
        const reply = yield* conversation.send("echo hi", { toolkit })
        expect(reply.content).toBe("It said hi.")
        return (yield* conversation.context).messages
      }).pipe(Effect.provide(Conversation.layer().pipe(Layer.provide(backends[3]!.layer(provider.url)))))
      expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
      expect(history[2]).toMatchObject({ role: "tool", name: "echo", content: "hi" })
    })))

  it.live("an error result and a JSON-RPC error both reach the model as error results", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      expect(yield* Effect.flip(toolkit.tools.get("fail")!.run({}))).toMatchObject({
        reason: "handler_failed",
        name: "fail",
        message: "the flux capacitor is out of flux"
      })
      const protocol = yield* Effect.flip(toolkit.tools.get("protocol_error")!.run({}))
      expect(protocol.reason).toBe("handler_failed")
      expect(protocol.message).toContain("no such order")
      expect(toolkit.servers[0]!.connected).toBe(true)
    })))

  for (const backend of backends) {
    it.live(`${backend.name}: a tool the server adds during a call is offered at the next step`, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* withServer
        const provider = yield* FakeProvider.make
        const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
        provider.enqueue(
          { kind: "reply", toolCalls: [{ id: "c1", name: "add_tool", arguments: {} }] },
          { kind: "reply", toolCalls: [{ id: "c2", name: "late", arguments: {} }] },
          { kind: "reply", text: "done" }
        )
        const { added } = yield* Toolkit.run([Message.user("add it")], toolkit).pipe(
          Effect.provide(backend.layer(provider.url))
        )
        const offered = (i: number) =>
          (provider.requests[i]!.body as { tools: ReadonlyArray<Record<string, any>> }).tools.map((tool) =>
            tool.function?.name ?? tool.name
          )
        expect(offered(0)).not.toContain("late")
        expect(offered(1)).toContain("late")
        expect(added.filter((m) => m.role === "tool").map((m) => m.content)).toEqual(["added", "late answer"])
      })))
  }

  it.live("a tool list change notified while idle refreshes the toolkit", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      expect(toolkit.tools.has("weather")).toBe(false)
      yield* Effect.promise(() =>
        server.addTool({ name: "weather", inputSchema: { type: "object", properties: {} } }, "sunny")
      )
      yield* Effect.promise(() => eventually(() => toolkit.tools.has("weather")))
      expect(yield* toolkit.tools.get("weather")!.run({})).toBe("sunny")
      expect(toolkit.servers[0]!.tools).toBe(toolkit.definitions.length)
    })))

  it.live("barge-in: interrupting the turn cancels the call in flight, and the server sees notifications/cancelled", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const provider = yield* FakeProvider.make
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      provider.enqueue({ kind: "reply", toolCalls: [{ id: "c1", name: "slow", arguments: { ms: 10_000 } }] })
      const turn = yield* Toolkit.stream([Message.user("go")], toolkit).pipe(
        Stream.runDrain,
        Effect.provide(backends[0]!.layer(provider.url)),
        Effect.fork
      )
      yield* Effect.promise(() => server.waitForCall("slow"))
      const cancellation = Effect.promise(() => server.nextCancellation())
      const [seen] = yield* Effect.all([cancellation, Fiber.interrupt(turn)], { concurrency: 2 })
      expect(seen.tool).toBe("slow")
      expect(server.cancelled).toHaveLength(1)
      expect(yield* toolkit.tools.get("echo")!.run({ text: "after" })).toBe("after")
    })))

  it.live("a call past its timeout fails with a timeout result, and the server sees it cancelled", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({
        servers: [http(server, { timeout: "10 seconds", toolTimeouts: { slow: "300 millis" } })]
      })
      const started = Date.now()
      const [failure, seen] = yield* Effect.all([
        Effect.flip(toolkit.tools.get("slow")!.run({ ms: 5000 })),
        Effect.promise(() => server.nextCancellation())
      ], { concurrency: 2 })
      expect(Date.now() - started).toBeLessThan(2000)
      expect(failure.reason).toBe("timeout")
      expect(failure.message).toBe("slow did not answer within 300ms; the call was cancelled")
      expect(seen.tool).toBe("slow")
      expect(yield* toolkit.tools.get("slow")!.run({ ms: 10 })).toBe("slow done")
    })))

  it.live("a server that dies mid-call fails the call with a typed error; the next call reconnects", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const provider = yield* FakeProvider.make
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      provider.enqueue(
        { kind: "reply", toolCalls: [{ id: "c1", name: "die", arguments: {} }] },
        { kind: "reply", toolCalls: [{ id: "c2", name: "echo", arguments: { text: "back" } }] },
        { kind: "reply", text: "recovered" }
      )
      const { added, result } = yield* Toolkit.run([Message.user("die")], toolkit).pipe(
        Effect.provide(backends[3]!.layer(provider.url))
      )
      expect(result.content).toBe("recovered")
      const [died, echoed] = added.filter((m) => m.role === "tool")
      expect(died).toMatchObject({ isError: true })
      expect(died!.content).toBe(
        "die failed: the connection to the MCP server shop closed during the call (it reconnects at the next call)"
      )
      expect(echoed).toMatchObject({ content: "back" })
      expect(server.sessionsOpened).toBe(2)
      expect(toolkit.servers[0]).toMatchObject({ connected: true, restarts: 1 })
      const sent = JSON.stringify(provider.requests[1]!.body)
      expect(sent).toContain("\"is_error\":true")
    })))

  it.live("a server that dies while its answer streams fails the call at once, not at its timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server, { timeout: "5 seconds" })] })
      const started = Date.now()
      const failure = yield* Effect.flip(toolkit.tools.get("die_streaming")!.run({}))
      expect(failure).toMatchObject({
        reason: "unavailable",
        message:
          "die_streaming failed: the connection to the MCP server shop closed during the call (it reconnects at the next call)"
      })
      expect(Date.now() - started).toBeLessThan(2000)
      expect(yield* toolkit.tools.get("echo")!.run({ text: "back" })).toBe("back")
      expect(toolkit.servers[0]!.restarts).toBe(1)
    })))

  it.live("a server that is down fails calls as unavailable until it is back", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({
        servers: [http(server)],
        reconnect: { initialDelay: "10 millis", maxDelay: "50 millis" }
      })
      yield* Effect.promise(server.stop)
      yield* Effect.promise(() => eventually(() => !toolkit.servers[0]!.connected))
      const down = yield* Effect.flip(toolkit.tools.get("echo")!.run({ text: "x" }))
      expect(down.reason).toBe("unavailable")
      expect(down.message).toMatch(/^echo is unavailable: the MCP server shop could not be reached/)
      yield* Effect.promise(server.restart)
      expect(yield* toolkit.tools.get("echo")!.run({ text: "up" })).toBe("up")
    })))

  it.live("a session the server forgot (404) is reopened and the call sent again, without an error", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server)] })
      server.forgetSessions()
      expect(yield* toolkit.tools.get("echo")!.run({ text: "again" })).toBe("again")
      expect(server.calls.filter((call) => call.tool === "echo")).toHaveLength(1)
      expect(server.sessionsOpened).toBe(2)
      expect(toolkit.servers[0]).toMatchObject({ connected: true, restarts: 1 })
    })))

  it.live("sends the configured headers (secrets as Redacted) and ends its session when the scope closes", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(McpHttpServer.start)
      yield* Effect.scoped(Effect.gen(function*() {
        const toolkit = yield* McpToolkit.make({
          servers: [http(server, { headers: { authorization: Redacted.make("Bearer s3cret-token") } })]
        })
        yield* toolkit.tools.get("echo")!.run({ text: "hi" })
        expect(server.calls.at(-1)?.authorization).toBe("Bearer s3cret-token")
        expect(server.sessionsAlive).toBe(1)
      }))
      expect(server.sessionsDeleted).toBe(1)
      expect(server.sessionsAlive).toBe(0)
      yield* Effect.promise(server.close)
    }))

  it.live("names tools of two servers apart when they share a name", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* withServer
      const toolkit = yield* McpToolkit.make({ servers: [http(server), everything()] })
      const names = toolkit.definitions.map((d) => d.name)
      expect(names).toContain("shop_echo")
      expect(names).toContain("everything_echo")
      expect(names).not.toContain("echo")
      expect(names).toContain("place_order")
      expect(names).toContain("get-sum")
      expect(yield* toolkit.tools.get("shop_echo")!.run({ text: "a" })).toBe("a")
      expect(yield* toolkit.tools.get("everything_echo")!.run({ message: "b" })).toBe("Echo: b")
    })))

  it.live("refuses bad options before connecting: a clear McpServerError", () =>
    Effect.gen(function*() {
      const attempt = (servers: ReadonlyArray<McpToolkit.Server>) =>
        Effect.scoped(McpToolkit.make({ servers })).pipe(Effect.flip)
      expect((yield* attempt([{ name: "a", url: "ftp://example.test/mcp" }])).message).toContain("http:// or https://")
      expect(
        (yield* attempt([{ name: "a", url: "http://mcp.example.test/mcp", headers: { authorization: "Bearer x" } }]))
          .message
      ).toContain("refusing to send headers or credentials over plain http to mcp.example.test")
      expect((yield* attempt([{ name: "a", command: "" }])).message).toContain("command")
      expect(
        (yield* attempt([{ name: "a", url: "http://127.0.0.1:1/mcp" }, { name: "a", url: "http://127.0.0.1:2/mcp" }]))
          .message
      ).toContain("given to two servers")
      expect(
        (yield* attempt([{ name: "a", url: "http://127.0.0.1:1/mcp", timeout: "soon" as Duration.DurationInput }]))
          .message
      ).toContain(
        "timeout"
      )
      const header = yield* attempt([{ name: "a", url: "https://mcp.example.test", headers: { x: "a\r\nb: c" } }])
      expect(header.message).toContain("header x")
      expect(header.message).not.toContain("a\r\nb")
      const secret = yield* attempt([
        { name: "a", url: "https://mcp.example.test", headers: { y: Redacted.make("tok-SECRET\nevil: 1") } }
      ])
      expect(secret.message).toBe("MCP server a: the value of header y contains a line break")
      const overall = yield* Effect.flip(Effect.scoped(McpToolkit.make({ servers: [], timeout: -1 })))
      expect(overall.message).toMatch(/^McpToolkit: the timeout option is not a duration/)
      const down = yield* attempt([{ name: "gone", url: "http://127.0.0.1:1/mcp" }])
      expect(down).toMatchObject({ _tag: "McpServerError", server: "gone" })
    }))
})
