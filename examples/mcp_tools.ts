/**
 * The orchestrator with tools from an MCP server: the reference server
 * `@modelcontextprotocol/server-everything` runs over stdio, its tools join
 * a Schema tool in one toolkit, each turn streams speech sentence by
 * sentence, and a barge-in cancels the MCP call in flight.
 * Run: npx tsx examples/mcp_tools.ts
 */
import { Console, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { Conversation, LlmStream, McpToolkit, Toolkit } from "../src/index.js"
import { describeBackend, exampleLlm } from "./support/backend.js"
import { ConsoleSpeech, Orchestrator, setTimer, SpeechSink } from "./support/kitchen.js"

/** server-everything, as installed in node_modules (`npx -y @modelcontextprotocol/server-everything` works too). */
const everythingEntry = join(
  dirname(createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/package.json")),
  "dist",
  "index.js"
)

const Mcp = McpToolkit.layer({
  servers: [{ name: "everything", command: process.execPath, args: [everythingEntry, "stdio"], stderr: "ignore" }],
  timeout: "30 seconds"
})

const OrchestratorLive = Layer.effect(
  Orchestrator,
  Effect.gen(function*() {
    const conversation = yield* Conversation.Conversation
    const speech = yield* SpeechSink
    const mcp = yield* McpToolkit.McpToolkit
    // Schema tools and MCP tools in one toolkit; the loop does not tell them apart
    const toolkit = Toolkit.merge(Toolkit.make(setTimer), mcp)
    return {
      handle: (userText) =>
        Effect.gen(function*() {
          yield* Console.log(`User: ${userText}`)
          const before = (yield* conversation.context).messages.length
          yield* conversation.sendStream(userText, { toolkit }).pipe(
            LlmStream.sentences,
            Stream.runForEach(speech.speak)
          )
          for (const message of (yield* conversation.context).messages.slice(before)) {
            if (message.role === "tool") yield* Console.log(`🔧 ${message.name} → ${message.content}`)
          }
        })
    }
  })
)

const AppLive = OrchestratorLive.pipe(
  Layer.provideMerge(Conversation.layer({ systemMessage: "You are a kitchen voice assistant." })),
  Layer.provideMerge(Mcp),
  Layer.provide(ConsoleSpeech),
  Layer.provide(exampleLlm([
    { kind: "reply", toolCalls: [{ id: "t1", name: "get-sum", arguments: { a: 2, b: 3 } }] },
    { kind: "reply", text: "Two plus three is five.", chunkSize: 5, delayMs: 5 },
    {
      kind: "reply",
      toolCalls: [
        { id: "t2", name: "set_timer", arguments: { minutes: 5 } },
        { id: "t3", name: "echo", arguments: { message: "Timer for 5 minutes" } }
      ]
    },
    { kind: "reply", text: "Your five minute timer is running.", chunkSize: 5, delayMs: 5 },
    {
      kind: "reply",
      text: "Starting the long operation. ",
      toolCalls: [{ id: "t4", name: "trigger-long-running-operation", arguments: { duration: 10, steps: 5 } }]
    }
  ]))
)

const program = Effect.gen(function*() {
  yield* Console.log(`Backend: ${describeBackend()}`)
  const mcp = yield* McpToolkit.McpToolkit
  for (const server of mcp.servers) {
    yield* Console.log(`MCP server ${server.name}: ${server.tools} tools over ${server.transport} (pid ${server.pid})`)
  }
  const orchestrator = yield* Orchestrator
  yield* orchestrator.handle("What's two plus three?")
  yield* orchestrator.handle("Set a timer for that many minutes.")

  // barge-in: the user speaks while a slow MCP tool runs; interrupting the turn cancels the call on the server
  const turn = yield* Effect.fork(orchestrator.handle("Run the long operation."))
  yield* Effect.repeat(Effect.sync(() => mcp.servers[0]!.inFlight), {
    until: (inFlight) => inFlight > 0,
    schedule: Schedule.spaced("20 millis")
  })
  const started = Date.now()
  yield* Fiber.interrupt(turn)
  yield* Console.log(
    `🛑 Barge-in: the MCP call was cancelled after ${Date.now() - started} ms (${mcp.servers[0]!.inFlight} in flight)`
  )

  const context = yield* (yield* Conversation.Conversation).context
  yield* Console.log(`History: ${context.messages.map((m) => m.role).join(" > ")}`)
})

program.pipe(Effect.provide(AppLive), Effect.runPromise)
