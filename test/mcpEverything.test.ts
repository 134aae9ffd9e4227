/**
 * The reference MCP server, `@modelcontextprotocol/server-everything`, run
 * over stdio from node_modules: its tools listed as tool definitions, called
 * through the tool loop with the fake provider scripting the model's calls
 * (every backend), its long-running tool interrupted mid-call, its error
 * results, and its process ended when the scope closes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as McpToolkit from "../src/McpToolkit.js"
import * as Message from "../src/Message.js"
import * as Tool from "../src/Tool.js"
import * as Toolkit from "../src/Toolkit.js"
import { backends } from "./support/backends.js"
import * as FakeProvider from "./support/FakeProvider.js"
import { eventually, everything, everythingEntry, isAlive, relay } from "./support/mcp.js"

/** Tool results in request `i`, whatever the protocol: [id, content, isError]. */
const toolResults = (server: FakeProvider.FakeProvider, i: number) =>
  (server.requests[i]!.body as { messages: ReadonlyArray<Record<string, any>> }).messages.flatMap((message) => {
    if (message.role === "tool") return [[message.tool_call_id, message.content, false]]
    if (Array.isArray(message.content)) {
      return message.content.filter((block: any) => block.type === "tool_result").map((block: any) => [
        block.tool_use_id,
        block.content,
        block.is_error === true
      ])
    }
    return []
  })

describe("McpToolkit with server-everything over stdio", () => {
  it.live("lists its tools as definitions with object parameters, leaving out the task-only tool", () =>
    Effect.scoped(Effect.gen(function*() {
      const toolkit = yield* McpToolkit.make({ servers: [everything()] })
      const names = toolkit.definitions.map((d) => d.name)
      for (
        const name of ["echo", "get-sum", "get-tiny-image", "get-structured-content", "trigger-long-running-operation"]
      ) {
        expect(names).toContain(name)
      }
      expect(names).not.toContain("simulate-research-query")
      for (const definition of toolkit.definitions) {
        expect(definition.parameters.type).toBe("object")
        expect(definition.parameters.$schema).toBeUndefined()
        expect(toolkit.tools.get(definition.name)?.definition).toBe(definition)
      }
      expect(toolkit.tools.get("echo")!.definition).toMatchObject({
        description: "Echoes back the input string",
        parameters: {
          type: "object",
          properties: { message: { type: "string", description: "Message to echo" } },
          required: ["message"]
        }
      })
      const [status] = toolkit.servers
      expect(status).toMatchObject({
        name: "everything",
        transport: "stdio",
        connected: true,
        restarts: 0,
        inFlight: 0
      })
      expect(status!.tools).toBe(toolkit.definitions.length)
      expect(isAlive(status!.pid!)).toBe(true)
      // a speculative generation runs a tool at once only when it says it only reads
      expect(toolkit.tools.get("echo")!.waitForFinal).toBe(false)
      expect(toolkit.tools.get("toggle-simulated-logging")!.waitForFinal).toBe(true)
    })))

  it.live("renders structured content, images and resources, and sends error results back as errors", () =>
    Effect.scoped(Effect.gen(function*() {
      const toolkit = yield* McpToolkit.make({ servers: [everything()] })
      const run = (name: string, args: Message.JsonObject) => toolkit.tools.get(name)!.run(args)
      expect(JSON.parse(yield* run("get-structured-content", { location: "Chicago" }))).toEqual({
        temperature: 36,
        conditions: "Light rain / drizzle",
        humidity: 82
      })
      expect(yield* run("get-tiny-image", {})).toMatch(
        /^Here's the image you requested:\n\[image: image\/png, \d+ bytes\]\nThe image above is the MCP logo\.$/
      )
      const reference = yield* run("get-resource-reference", { resourceType: "Text", resourceId: 2 })
      expect(reference).toContain(
        "\n[resource demo://resource/dynamic/text/2 (text/plain)]\nResource 2: This is a plaintext resource"
      )
      expect(yield* run("get-resource-links", { count: 1 })).toContain(
        "\n[resource link: Blob Resource 1 <demo://resource/dynamic/blob/1> (text/plain): Resource 1: plaintext resource]"
      )
      const failed = yield* Effect.flip(run("get-resource-reference", { resourceId: 1.5 }))
      expect(failed.reason).toBe("handler_failed")
      expect(failed.message).toContain("Invalid resourceId: 1.5")
      const invalid = yield* Effect.flip(run("get-sum", { a: "two", b: 3 }))
      expect(invalid).toMatchObject({ reason: "invalid_arguments", name: "get-sum" })
      expect(invalid.message).toContain("must be number")
    })))

  for (const backend of backends) {
    it.live(`${backend.name}: the tool loop calls echo and get-sum, and an error result reaches the model as one`, () =>
      Effect.scoped(Effect.gen(function*() {
        const provider = yield* FakeProvider.make
        const toolkit = yield* McpToolkit.make({ servers: [everything()] })
        const clock = Tool.make("clock", {
          description: "The time",
          parameters: Schema.Struct({}),
          handler: () => Effect.succeed("12:00")
        })
        provider.enqueue(
          {
            kind: "reply",
            toolCalls: [
              { id: "c1", name: "echo", arguments: { message: "hello" } },
              { id: "c2", name: "get-sum", arguments: { a: 2, b: 3 } },
              { id: "c3", name: "clock", arguments: {} }
            ]
          },
          { kind: "reply", toolCalls: [{ id: "c4", name: "get-resource-reference", arguments: { resourceId: 0 } }] },
          { kind: "reply", text: "2 + 3 = 5" }
        )
        const { result, steps } = yield* Toolkit.run(
          [Message.user("echo hello, add 2 and 3")],
          Toolkit.merge(Toolkit.make(clock), toolkit)
        ).pipe(Effect.provide(backend.layer(provider.url)))
        expect(result.content).toBe("2 + 3 = 5")
        expect(steps).toBe(3)
        expect(toolResults(provider, 1)).toEqual([
          ["c1", "Echo: hello", false],
          ["c2", "The sum of 2 and 3 is 5.", false],
          ["c3", "12:00", false]
        ])
        const [[id, content, isError]] = toolResults(provider, 2).slice(-1) as Array<[string, string, boolean]>
        expect(id).toBe("c4")
        expect(content).toContain("Invalid resourceId: 0")
        if (backend.protocol === "messages") expect(isError).toBe(true)
        const sent = provider.requests[0]!.body as { tools: ReadonlyArray<Record<string, any>> }
        const sentNames = sent.tools.map((tool) => tool.function?.name ?? tool.name)
        expect(sentNames[0]).toBe("clock")
        expect(sentNames).toContain("echo")
      })))
  }

  it.live("interrupting the turn cancels the long-running call: the server receives notifications/cancelled and drops its answer", () =>
    Effect.gen(function*() {
      const log = join(mkdtempSync(join(tmpdir(), "mcp-relay-")), "log")
      const messages = () =>
        readFileSync(log, "utf8").split("\n").filter((line) => line !== "").map((line) => {
          const [direction, ...json] = line.split(" ")
          return { direction, message: JSON.parse(json.join(" ")) as Record<string, any> }
        })
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => {
        logs.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      yield* Effect.scoped(Effect.gen(function*() {
        const provider = yield* FakeProvider.make
        // the relay passes stdio through and records what reaches server-everything
        const toolkit = yield* McpToolkit.make({
          servers: [
            everything({ args: [relay, process.execPath, everythingEntry, "stdio"], env: { MCP_RELAY_LOG: log } })
          ]
        })
        provider.enqueue({
          kind: "reply",
          toolCalls: [{ id: "c1", name: "trigger-long-running-operation", arguments: { duration: 1.2, steps: 2 } }]
        })
        const turn = yield* Toolkit.stream([Message.user("run it")], toolkit).pipe(
          Stream.runDrain,
          Effect.provide(backends[0]!.layer(provider.url)),
          Effect.fork
        )
        yield* Effect.promise(() => eventually(() => toolkit.servers[0]!.inFlight === 1))
        yield* Effect.sleep("200 millis")
        const started = Date.now()
        yield* Fiber.interrupt(turn)
        expect(Date.now() - started).toBeLessThan(500)
        expect(toolkit.servers[0]!.inFlight).toBe(0)
        const call = messages().find(({ direction, message }) =>
          direction === "in" && message.method === "tools/call" &&
          message.params.name === "trigger-long-running-operation"
        )!
        yield* Effect.promise(() =>
          eventually(() =>
            messages().some(({ direction, message }) =>
              direction === "in" && message.method === "notifications/cancelled" &&
              message.params.requestId === call.message.id
            )
          )
        )
        // had the server ignored the cancellation, its answer would come out once the 1.2 s are up
        yield* Effect.sleep("1500 millis")
        expect(messages().filter(({ direction, message }) => direction === "out" && message.id === call.message.id))
          .toEqual([])
        expect(yield* toolkit.tools.get("echo")!.run({ message: "still there" })).toBe("Echo: still there")
        expect(toolkit.servers[0]!.restarts).toBe(0)
      })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Logger.withMinimumLogLevel(LogLevel.All))
      expect(logs.filter((line) => line.includes("unknown message ID"))).toEqual([])
      expect(logs.some((line) => line.startsWith("MCP server everything: connected (pid "))).toBe(true)
    }))

  it.live("closing the scope ends the server process", () =>
    Effect.gen(function*() {
      const pid = yield* Effect.scoped(Effect.gen(function*() {
        const toolkit = yield* McpToolkit.make({ servers: [everything()] })
        return toolkit.servers[0]!.pid!
      }))
      expect(isAlive(pid)).toBe(false)
    }))

  it.live("the layer gives the toolkit as a service, and prefixes its tools when asked", () =>
    Effect.gen(function*() {
      const names = yield* Effect.map(McpToolkit.McpToolkit, (kit) => kit.definitions.map((d) => d.name)).pipe(
        Effect.provide(McpToolkit.layer({ servers: [everything({ prefix: true })] }))
      )
      expect(names).toContain("everything_echo")
      expect(names).toContain("everything_get-sum")
    }))
})
