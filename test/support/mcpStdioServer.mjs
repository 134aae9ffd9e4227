/**
 * A stdio MCP server for the tests, built with the SDK's own server classes.
 * Each start appends `start <pid> <ms>` to the file in MCP_TEST_LOG, and each
 * cancellation it receives `cancelled <tool>`, so a test can see restarts and
 * what the server saw. Tools: `ping` (answers `pong <pid>`), `crash` (the
 * process exits during the call), `slow` (answers after `ms` milliseconds,
 * unless cancelled). Plain JavaScript, so it starts without a TypeScript loader.
 */
import { appendFileSync } from "node:fs"
import process from "node:process"
import { clearTimeout, setTimeout } from "node:timers"

const log = (line) => {
  if (process.env.MCP_TEST_LOG) appendFileSync(process.env.MCP_TEST_LOG, `${line}\n`)
}
// logged before the SDK loads, so the time is the process's start
log(`start ${process.pid} ${Date.now()}`)

const { Server } = await import("@modelcontextprotocol/sdk/server/index.js")
const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js")
const { CallToolRequestSchema, ListToolsRequestSchema } = await import("@modelcontextprotocol/sdk/types.js")

const server = new Server({ name: "test-stdio", version: "1.0.0" }, { capabilities: { tools: {} } })
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [
    { name: "ping", description: "Answers pong", inputSchema: { type: "object", properties: {} } },
    { name: "crash", description: "Exits during the call", inputSchema: { type: "object", properties: {} } },
    {
      name: "slow",
      description: "Answers after ms milliseconds",
      inputSchema: { type: "object", properties: { ms: { type: "number" } }, required: ["ms"] }
    },
    { name: "secret", description: "Tells whether it got its token", inputSchema: { type: "object", properties: {} } }
  ]
}))
server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
  switch (request.params.name) {
    case "ping":
      return { content: [{ type: "text", text: `pong ${process.pid}` }] }
    case "crash":
      log(`crash ${process.pid}`)
      setTimeout(() => process.exit(3), 20)
      return await new Promise(() => {})
    case "slow":
      return await new Promise((resolve) => {
        const timer = setTimeout(
          () => resolve({ content: [{ type: "text", text: "slow done" }] }),
          request.params.arguments.ms
        )
        extra.signal.addEventListener("abort", () => {
          clearTimeout(timer)
          log("cancelled slow")
        })
      })
    case "secret":
      return { content: [{ type: "text", text: `token length ${(process.env.TEST_TOKEN ?? "").length}` }] }
    default:
      return { content: [{ type: "text", text: "unknown" }], isError: true }
  }
})
await server.connect(new StdioServerTransport())
