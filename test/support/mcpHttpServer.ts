/**
 * A Streamable HTTP MCP server on loopback, built with the SDK's own server
 * classes (one `Server` per session, as a real deployment runs them), with
 * tools that exercise the client: nested schemas, error results, protocol
 * errors, a tool list that changes, slow calls that record their
 * cancellation, and a call during which the server "crashes" (every socket
 * destroyed and every session forgotten, as after a restart).
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type Tool
} from "@modelcontextprotocol/sdk/types.js"
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo, Socket } from "node:net"

/** A cancellation the server received (`notifications/cancelled`): the request's id and the client's reason. */
export interface Cancellation {
  readonly tool: string
  readonly reason: string | undefined
}

export interface McpHttpServer {
  /** `http://127.0.0.1:PORT/mcp` */
  readonly url: string
  /** Tool calls received, in order, by tool name, with their arguments and the headers they came with. */
  readonly calls: ReadonlyArray<{ readonly tool: string; readonly args: unknown; readonly authorization?: string }>
  /** Calls the server saw cancelled. */
  readonly cancelled: ReadonlyArray<Cancellation>
  /** Resolves at the next cancellation. */
  nextCancellation(timeoutMs?: number): Promise<Cancellation>
  /** Resolves when a call of `tool` has arrived (one more than `after`). */
  waitForCall(tool: string, after?: number, timeoutMs?: number): Promise<void>
  /** Sessions opened (initialize requests answered). */
  readonly sessionsOpened: number
  /** Sessions the client ended with DELETE. */
  readonly sessionsDeleted: number
  /** Sessions alive now. */
  readonly sessionsAlive: number
  /** Adds a tool to every session's list and tells the clients (`notifications/tools/list_changed`). */
  addTool(tool: Tool, answer: string): Promise<void>
  /** Forgets every session (requests with their ids get 404), keeping connections and streams open. */
  forgetSessions(): void
  /** Stops accepting connections and destroys every socket (`restart()` brings it back on the same port). */
  stop(): Promise<void>
  /** Listens again on the same port, with no sessions. */
  restart(): Promise<void>
  close(): Promise<void>
}

/** The tools every session starts with. */
const baseTools: ReadonlyArray<Tool> = [
  {
    name: "place_order",
    description: "Places an order",
    inputSchema: {
      type: "object",
      properties: {
        customer: {
          type: "object",
          properties: {
            name: { type: "string" },
            address: {
              type: "object",
              properties: { city: { type: "string" }, zip: { type: "string", pattern: "^[0-9]{4}$" } },
              required: ["city"]
            }
          },
          required: ["name", "address"]
        },
        items: {
          type: "array",
          minItems: 1,
          items: {
            type: "object",
            properties: { sku: { type: "string" }, quantity: { type: "integer", minimum: 1 } },
            required: ["sku", "quantity"]
          }
        },
        "gift note": { type: "string" }
      },
      required: ["customer", "items"]
    }
  },
  {
    name: "fail",
    description: "Always reports an error result",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "protocol_error",
    description: "Answers with a JSON-RPC error",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "slow",
    description: "Answers after ms milliseconds, unless cancelled",
    inputSchema: { type: "object", properties: { ms: { type: "number" } }, required: ["ms"] }
  },
  {
    name: "add_tool",
    description: "Adds the tool late to the list",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "die",
    description: "The server crashes during the call",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "die_streaming",
    description: "The server crashes once its answer has started streaming",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "broken_schema",
    description: "Its schema is not JSON Schema: it is left out",
    inputSchema: { type: "object", properties: { a: { type: "strnig" } } }
  },
  {
    name: "echo",
    description: "Echoes its text",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] }
  }
]

const header = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** Starts the server on an ephemeral loopback port. */
export const start = async (): Promise<McpHttpServer> => {
  const extraTools: Array<{ readonly tool: Tool; readonly answer: string }> = []
  const sessions = new Map<string, { readonly transport: StreamableHTTPServerTransport; readonly server: Server }>()
  const calls: Array<{ tool: string; args: unknown; authorization?: string }> = []
  const cancelled: Array<Cancellation> = []
  const cancellationWaiters: Array<(c: Cancellation) => void> = []
  const callWaiters: Array<() => void> = []
  const sockets = new Set<Socket>()
  const counters = { opened: 0, deleted: 0 }
  let lastAuthorization: string | undefined

  const newSession = () => {
    const server = new Server({ name: "test-http", version: "1.0.0" }, {
      capabilities: { tools: { listChanged: true }, logging: {} }
    })
    server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: [...baseTools, ...extraTools.map(({ tool }) => tool)]
    }))
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const tool = request.params.name
      calls.push({
        tool,
        args: request.params.arguments,
        ...(lastAuthorization ? { authorization: lastAuthorization } : {})
      })
      for (const wake of callWaiters.splice(0)) wake()
      const args = (request.params.arguments ?? {}) as Record<string, unknown>
      switch (tool) {
        case "place_order": {
          const items = args.items as ReadonlyArray<{ sku: string; quantity: number }>
          return {
            content: [{ type: "text", text: `order placed for ${(args.customer as { name: string }).name}` }],
            structuredContent: { orderId: "o-1", lines: items.length, note: args["gift note"] ?? null }
          }
        }
        case "fail":
          return { content: [{ type: "text", text: "the flux capacitor is out of flux" }], isError: true }
        case "protocol_error":
          throw new McpError(ErrorCode.InvalidParams, "no such order")
        case "slow":
          return await new Promise((resolve) => {
            const timer = setTimeout(() => resolve({ content: [{ type: "text", text: "slow done" }] }), Number(args.ms))
            extra.signal.addEventListener("abort", () => {
              clearTimeout(timer)
              const entry = {
                tool,
                reason: extra.signal.reason === undefined ? undefined : String(extra.signal.reason)
              }
              cancelled.push(entry)
              for (const wake of cancellationWaiters.splice(0)) wake(entry)
            })
          })
        case "add_tool":
          extraTools.push({
            tool: { name: "late", description: "Arrived late", inputSchema: { type: "object", properties: {} } },
            answer: "late answer"
          })
          // on this request's stream, before the result, as a server that changes its tools mid-call does
          await extra.sendNotification({ method: "notifications/tools/list_changed" })
          return { content: [{ type: "text", text: "added" }] }
        case "die":
          crash()
          return await new Promise(() => {})
        case "die_streaming":
          // a notification on this request's stream: the response is under way when the server dies
          await extra.sendNotification({ method: "notifications/message", params: { level: "info", data: "working" } })
          setTimeout(() => crash(), 100)
          return await new Promise(() => {})
        case "echo":
          return { content: [{ type: "text", text: String(args.text) }] }
        default: {
          const extraTool = extraTools.find((entry) => entry.tool.name === tool)
          if (extraTool !== undefined) return { content: [{ type: "text", text: extraTool.answer }] }
          return { content: [{ type: "text", text: `unknown tool ${tool}` }], isError: true }
        }
      }
    })
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        counters.opened++
        sessions.set(id, { transport, server })
      },
      onsessionclosed: (id) => {
        counters.deleted++
        sessions.delete(id)
      }
    })
    return { server, transport }
  }

  const http = createServer((req, res) => {
    lastAuthorization = header(req, "authorization")
    const id = header(req, "mcp-session-id")
    const existing = id === undefined ? undefined : sessions.get(id)
    if (existing !== undefined) {
      void existing.transport.handleRequest(req, res)
      return
    }
    if (id !== undefined) {
      res.writeHead(404, { "content-type": "application/json" }).end(
        JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null })
      )
      return
    }
    const { server, transport } = newSession()
    void server.connect(transport).then(() => transport.handleRequest(req, res))
  })
  http.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })

  const listen = (port: number) =>
    new Promise<number>((resolve) =>
      http.listen(port, "127.0.0.1", () => resolve((http.address() as AddressInfo).port))
    )
  const port = await listen(0)

  const forgetSessions = () => {
    for (const { server } of sessions.values()) void server.close().catch(() => {})
    sessions.clear()
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      forgetSessions()
      http.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })
  /** What a crash looks like from outside: every connection cut, every session gone. */
  function crash() {
    forgetSessions()
    for (const socket of sockets) socket.destroy()
  }

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    cancelled,
    nextCancellation: (timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no cancellation arrived")), timeoutMs)
        cancellationWaiters.push((entry) => {
          clearTimeout(timer)
          resolve(entry)
        })
      }),
    waitForCall: (tool, after = 0, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no call of ${tool} arrived`)), timeoutMs)
        const check = () => {
          if (calls.filter((call) => call.tool === tool).length > after) {
            clearTimeout(timer)
            resolve()
          } else {
            callWaiters.push(check)
          }
        }
        check()
      }),
    get sessionsOpened() {
      return counters.opened
    },
    get sessionsDeleted() {
      return counters.deleted
    },
    get sessionsAlive() {
      return sessions.size
    },
    addTool: async (tool, answer) => {
      extraTools.push({ tool, answer })
      await Promise.all([...sessions.values()].map(({ server }) => server.sendToolListChanged()))
    },
    forgetSessions: () => sessions.clear(),
    stop,
    restart: async () => {
      await listen(port)
    },
    close: stop
  }
}
