/**
 * A plain HTTP server on a loopback port, for tests that need a server
 * other than the fake provider: one that misbehaves at the HTTP level.
 */
import * as Effect from "effect/Effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** What the test server saw of one request. */
export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage["headers"]
  body: string
  /** Resolves when the client closed the request before the response ended. */
  readonly aborted: Promise<void>
  /** Resolves when the response was written to its end. */
  readonly finished: Promise<void>
}

/** A loopback HTTP server answering each request with `handler`, closed with the scope. */
export const serve = (handler: (req: IncomingMessage, res: ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly seen: Array<Seen>; readonly connections: () => number }>((resume) => {
      const seen: Array<Seen> = []
      let connections = 0
      const server = createServer((req, res) => {
        let abort!: () => void
        let finish!: () => void
        const entry: Seen = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: "",
          aborted: new Promise((resolve) => (abort = resolve)),
          finished: new Promise((resolve) => (finish = resolve))
        }
        seen.push(entry)
        req.on("data", (part: Buffer) => (entry.body += part.toString()))
        res.on("close", () => (res.writableFinished ? finish() : abort()))
        req.on("end", () => handler(req, res))
      })
      server.on("connection", () => connections++)
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed(Object.assign(
          { url: `http://127.0.0.1:${port}`, seen, connections: () => connections },
          { server }
        )))
      })
    }),
    (made) =>
      Effect.async<void>((resume) => {
        const server = (made as unknown as { server: ReturnType<typeof createServer> }).server
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
