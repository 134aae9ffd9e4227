/**
 * The benchmark's fake LLM server, run in its own process so that its work
 * never counts against a client. It answers Chat Completions
 * (`.../chat/completions`), Anthropic Messages (`.../v1/messages`) and OpenAI
 * Responses (`.../responses`) with precomputed bodies: JSON, or SSE when the
 * request body says `"stream":true`.
 *
 * The first path segment picks how a stream is delivered:
 * - `/fast/...`: the whole event stream in one write;
 * - `/paced/...`: one event per write, `pacingMillis` apart (one event per network read);
 * - `/ttft/...`: the events up to the first text delta at once, the rest `ttftGapMillis` later;
 * - `/model/...`: one event per write, `modelPacingMillis` apart (a real model's pace, 50 events/s);
 * - `/delayed/...`: nothing for `delayMillis` after the request arrives, then the whole stream in one write.
 *
 * A Chat Completions request that asks for a structured output
 * (`response_format`) gets `objectReplies.chat`; one that offers tools but
 * carries no tool result yet gets `toolCallReply` (the one-tool-step rows).
 *
 * `GET /stats` answers `{"connections":N,"requests":N}`: the TCP connections
 * accepted and requests answered so far, to check that clients reuse their
 * connections.
 *
 * It prints `{"port":N}` on stdout once listening and exits when stdin closes.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { type Mode, objectReplies, type Protocol, replies, type Reply, toolCallReply } from "./payloads.js"

/** The gap between two events of a paced stream. */
const pacingMillis = 1
/** The gap between two events of a `model` stream: 50 events per second. */
const modelPacingMillis = 20
/** The gap between the first text delta and the rest of a `ttft` stream. */
const ttftGapMillis = 1
/** How long a `delayed` stream waits after the request arrives before its one write. */
const delayMillis = 5

interface Prepared {
  readonly json: Buffer
  readonly events: ReadonlyArray<Buffer>
  readonly whole: Buffer
  readonly head: Buffer
  readonly rest: Buffer
}

const prepare = (reply: Reply): Prepared => {
  const events = reply.events.map((event) => Buffer.from(event))
  return {
    json: Buffer.from(reply.json),
    events,
    whole: Buffer.concat(events),
    head: Buffer.concat(events.slice(0, reply.firstTextEvent)),
    rest: Buffer.concat(events.slice(reply.firstTextEvent))
  }
}

const prepared: Readonly<Record<Protocol, Prepared>> = {
  chat: prepare(replies.chat),
  messages: prepare(replies.messages),
  responses: prepare(replies.responses)
}
const preparedObject = prepare(objectReplies.chat)
const preparedToolCall = prepare(toolCallReply)

const protocolOf = (path: string): Protocol | undefined =>
  path.endsWith("/chat/completions")
    ? "chat"
    : path.endsWith("/v1/messages")
    ? "messages"
    : path.endsWith("/responses")
    ? "responses"
    : undefined

const modeOf = (path: string): Mode | undefined => {
  const mode = path.slice(1, path.indexOf("/", 1))
  return mode === "fast" || mode === "paced" || mode === "ttft" || mode === "delayed" || mode === "model"
    ? mode
    : undefined
}

const streamMarker = Buffer.from("\"stream\":true")
const objectMarker = Buffer.from("\"response_format\"")
const toolsMarker = Buffer.from("\"tools\"")
const toolResultMarker = Buffer.from("\"role\":\"tool\"")

/** The reply a request gets: the plain one, or (Chat Completions) a structured output's or a tool call's. */
const replyFor = (protocol: Protocol, body: Buffer): Prepared =>
  protocol !== "chat"
    ? prepared[protocol]
    : body.indexOf(objectMarker) >= 0
    ? preparedObject
    : body.indexOf(toolsMarker) >= 0 && body.indexOf(toolResultMarker) < 0
    ? preparedToolCall
    : prepared.chat

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const jsonHeaders = (length: number) => ({
  "content-type": "application/json",
  "content-length": String(length),
  "x-request-id": "req_bench"
})

const sseHeaders = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-request-id": "req_bench"
}

/** Writes a paced stream: one event per write, each after a short pause. */
const writePaced = async (
  res: http.ServerResponse,
  events: ReadonlyArray<Buffer>,
  gapMillis: number
): Promise<void> => {
  res.writeHead(200, sseHeaders)
  for (const event of events) {
    if (res.destroyed) return
    res.write(event)
    await sleep(gapMillis)
  }
  res.end()
}

/** Connections accepted and requests answered, for `GET /stats`. */
const stats = { connections: 0, requests: 0 }

const answer = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void => {
  const url = req.url ?? "/"
  if (req.method === "GET" && url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify(stats))
    return
  }
  stats.requests++
  const query = url.indexOf("?")
  const path = query < 0 ? url : url.slice(0, query)
  const protocol = protocolOf(path)
  const mode = modeOf(path)
  if (req.method !== "POST" || protocol === undefined || mode === undefined) {
    res.writeHead(404, { "content-type": "application/json" })
    res.end(JSON.stringify({ error: { message: `no route for ${req.method} ${path}`, type: "not_found_error" } }))
    return
  }
  const reply = replyFor(protocol, body)
  if (body.indexOf(streamMarker) < 0) {
    res.writeHead(200, jsonHeaders(reply.json.length))
    res.end(reply.json)
    return
  }
  switch (mode) {
    case "fast":
      res.writeHead(200, sseHeaders)
      res.end(reply.whole)
      return
    case "paced":
      void writePaced(res, reply.events, pacingMillis)
      return
    case "model":
      void writePaced(res, reply.events, modelPacingMillis)
      return
    case "ttft":
      res.writeHead(200, sseHeaders)
      res.write(reply.head)
      setTimeout(() => res.end(reply.rest), ttftGapMillis)
      return
    case "delayed":
      setTimeout(() => {
        res.writeHead(200, sseHeaders)
        res.end(reply.whole)
      }, delayMillis)
      return
  }
}

const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
  const parts: Array<Buffer> = []
  req.on("data", (part: Buffer) => parts.push(part))
  req.on("end", () => answer(req, res, parts.length === 1 ? parts[0]! : Buffer.concat(parts)))
})
server.on("connection", () => stats.connections++)
server.maxHeadersCount = 100
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n")
})
process.stdin.resume()
process.stdin.on("end", () => process.exit(0))
