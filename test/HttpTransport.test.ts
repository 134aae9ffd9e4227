/**
 * The default transport (undici, directly) on its own, over real loopback
 * HTTP: headers, whole bodies and their limit, backpressure, what happens to
 * a body the consumer stops reading, aborts, and a custom dispatcher.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { Agent, type Dispatcher } from "undici"
import * as HttpTransport from "../src/HttpTransport.js"
import * as Deadlines from "../src/internal/deadlines.js"
import { isDirect } from "../src/internal/transport.js"
import * as Local from "../src/layers/Local.js"
import * as Llm from "../src/Llm.js"
import * as Message from "../src/Message.js"
import * as LlmStream from "../src/Stream.js"
import { serve } from "./support/loopback.js"

/** A response's body as a channel of its network reads, for pulling one batch at a time. */
const bodyOf = (
  reader: HttpTransport.BodyReader
): Channel.Channel<Chunk.Chunk<Uint8Array>, unknown, HttpTransport.TransportError, unknown, void, unknown> => {
  const pull: Channel.Channel<Chunk.Chunk<Uint8Array>, unknown, HttpTransport.TransportError, unknown, void, unknown> =
    Channel.suspend(() => {
      const got = reader.poll()
      if (got === undefined) return Channel.zipRight(Channel.fromEffect(reader.ready), pull)
      if (got === null) return Channel.void
      if (got instanceof HttpTransport.TransportError) return Channel.fail(got)
      return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(got)), pull)
    })
  return pull
}

const transport = HttpTransport.undici()

/** Sends `request` in a fresh scope; returns the response and the scope (closed by the test). */
const send = (request: HttpTransport.Request) =>
  Effect.flatMap(
    Scope.make(),
    (scope) => Effect.map(transport.send(request, scope), (response) => ({ response, scope }))
  )

describe("HttpTransport.undici", () => {
  it.scoped("sends method, headers and body; returns status, lower-case headers and the whole body", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.setHeader("X-Request-ID", "req_1")
        res.setHeader("Set-Cookie", ["a=1", "b=2"])
        res.writeHead(201, { "content-type": "application/json" })
        res.end(JSON.stringify({ ok: true }))
      })
      const { response, scope } = yield* send({
        method: "POST",
        url: `${server.url}/v1/chat/completions?x=1`,
        headers: { "content-type": "application/json", authorization: "Bearer k" },
        body: "{\"model\":\"m\"}"
      })
      expect(response.status).toBe(201)
      expect(response.headers["x-request-id"]).toBe("req_1")
      expect(response.headers["set-cookie"]).toBe("a=1, b=2")
      expect(Buffer.from(yield* response.bytes(1024)).toString()).toBe("{\"ok\":true}")
      yield* Scope.close(scope, Exit.void)
      const [request] = server.seen
      expect(request!.method).toBe("POST")
      expect(request!.url).toBe("/v1/chat/completions?x=1")
      expect(request!.headers.authorization).toBe("Bearer k")
      expect(request!.body).toBe("{\"model\":\"m\"}")
    }))

  it.scoped("a body past the limit fails with reason tooLarge and the request is aborted", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        const piece = "x".repeat(64 * 1024)
        let sent = 0
        const pump = () => {
          while (sent < 64 && res.write(piece)) sent++
          if (sent < 64) res.once("drain", pump)
          else res.end()
        }
        pump()
      })
      const { response, scope } = yield* send({ method: "GET", url: server.url, headers: {} })
      const error = yield* Effect.flip(response.bytes(100 * 1024))
      expect(error.reason).toBe("tooLarge")
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => server.seen[0]!.aborted)
    }))

  it.scoped("a body whose content-length passes the limit is refused at once, before it arrives, and aborted", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) })
        res.write("{\"start\":")
        // and never sends the rest
      })
      const { response, scope } = yield* send({ method: "GET", url: server.url, headers: {} })
      const error = yield* Effect.flip(response.bytes(1024))
      expect(error.reason).toBe("tooLarge")
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => server.seen[0]!.aborted)
    }))

  it.scopedLive("a slow reader pauses the socket: the server cannot run ahead of it", () =>
    Effect.gen(function*() {
      const total = 64 * 1024 * 1024
      let written = 0
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" })
        const piece = Buffer.alloc(64 * 1024, 120)
        const pump = () => {
          while (written < total) {
            written += piece.length
            if (!res.write(piece)) return void res.once("drain", pump)
          }
          res.end()
        }
        pump()
      })
      const { response, scope } = yield* send({ method: "GET", url: server.url, headers: {} })
      // take one batch, then stop reading for a while
      const pull = yield* Channel.toPull(bodyOf(response.reader))
      yield* pull
      yield* Effect.sleep("300 millis")
      // kernel buffers on both sides hold a few MiB; without the pause the whole body would be in by now
      expect(written).toBeLessThan(total / 2)
      yield* Scope.close(scope, Exit.void)
    }))

  it.scoped("a body left unread after a success is drained, and its connection serves the next requests", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" })
        res.write("first part")
        setTimeout(() => res.end("second part"), 20)
      })
      for (let i = 0; i < 10; i++) {
        const { response, scope } = yield* send({ method: "GET", url: server.url, headers: {} })
        const pull = yield* Channel.toPull(bodyOf(response.reader))
        yield* pull
        yield* Scope.close(scope, Exit.void)
        yield* Effect.promise(() => server.seen[i]!.finished)
      }
      // undici may open a spare connection when a request is sent in the tick a socket comes back: two is steady
      expect(server.connections()).toBeLessThanOrEqual(2)
    }))

  it.scoped("closing the scope with a failure aborts the request at once", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" })
        res.write("never ends")
      })
      const { scope } = yield* send({ method: "GET", url: server.url, headers: {} })
      yield* Scope.close(scope, Exit.fail("stop"))
      yield* Effect.promise(() => server.seen[0]!.aborted)
    }))

  it.scopedLive("interrupting a request waiting for its headers aborts it", () =>
    Effect.gen(function*() {
      const server = yield* serve(() => {})
      const fiber = yield* Effect.fork(Effect.scoped(Effect.flatMap(Effect.scope, (scope) =>
        transport.send({ method: "GET", url: server.url, headers: {} }, scope))))
      while (server.seen.length === 0) {
        yield* Effect.sleep("5 millis")
      }
      yield* Fiber.interrupt(fiber)
      yield* Effect.promise(() =>
        server.seen[0]!.aborted
      )
    }))

  it.scopedLive("interrupting a read of the whole body aborts the request, through its scope", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.write("{\"partial\":")
      })
      const fiber = yield* Effect.fork(
        Effect.scoped(
          Effect.flatMap(
            Effect.scope,
            (scope) =>
              Effect.flatMap(
                transport.send({ method: "GET", url: server.url, headers: {} }, scope),
                (response) => response.bytes(1 << 20)
              )
          )
        )
      )
      while (server.seen.length === 0) {
        yield* Effect.sleep("5 millis")
      }
      yield* Effect.sleep("20 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Effect.promise(() => server.seen[0]!.aborted)
    }))

  it.effect("nothing listening fails with reason network and the socket's error code", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Effect.flatMap(Effect.scope, (scope) =>
        transport.send({ method: "GET", url: "http://127.0.0.1:9/", headers: {} }, scope))))
      expect(error.reason).toBe("network")
      expect((error.cause as { code?: string }).code).toBe("ECONNREFUSED")
    }))

  it.effect("a URL that is not one fails with reason network and Node's ERR_INVALID_URL, sending nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.scoped(
          Effect.flatMap(
            Effect.scope,
            (scope) => transport.send({ method: "GET", url: "not a url", headers: {} }, scope)
          )
        )
      )
      expect(error._tag).toBe("TransportError")
      expect(error.reason).toBe("network")
      expect((error.cause as { code?: string }).code).toBe("ERR_INVALID_URL")
    }))

  it.scopedLive(
    "a stream that ends at its terminator while the body stays open ends at once; the rest is aborted later",
    () =>
      Effect.gen(function*() {
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          res.write("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n")
          res.write("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
          // and never ends the response
        })
        const text = yield* LlmStream.collect(Llm.stream([Message.user("Hi")])).pipe(
          Effect.map((result) => result.content),
          Effect.provide(Local.layer({ baseUrl: server.url }))
        )
        expect(text).toBe("Hi")
        expect(server.seen[0]!.headers["content-type"]).toBe("application/json")
        // the drain gives the rest of the body two seconds, then aborts the request
        yield* Effect.promise(() => server.seen[0]!.aborted)
      }),
    10_000
  )
})

describe("HttpTransport.undici without a scope (sendDirect: the providers' own attempts)", () => {
  const direct = HttpTransport.undici()
  if (!isDirect(direct)) throw new Error("the default transport sends without a scope")
  /** A GET of `url` released through `deadline`. */
  const get = (url: string, deadline: Deadlines.Deadline) =>
    direct.sendDirect({ method: "GET", url, headers: {} }, deadline)

  it("only the default transport sends without a scope; a transport of its send alone takes one", () => {
    expect(isDirect(direct)).toBe(true)
    expect(isDirect({ send: direct.send })).toBe(false)
  })

  it.scoped("a reply read to its end and released as used is not aborted", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => res.end("hello"))
      const deadline = Deadlines.make(undefined, 0)
      const response = yield* get(server.url, deadline)
      expect(Buffer.from(yield* response.bytes(1024)).toString()).toBe("hello")
      deadline.releaseAttached(true)
      yield* Effect.promise(() => server.seen[0]!.finished)
    }))

  it.scopedLive("released as used before its body ended, the rest arrives and is dropped: the request is not aborted", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" })
        res.write("first part")
        setTimeout(() => res.end("second part"), 20)
      })
      const deadline = Deadlines.make(undefined, 0)
      const response = yield* get(server.url, deadline)
      expect(response.status).toBe(200)
      deadline.releaseAttached(true)
      yield* Effect.promise(() => server.seen[0]!.finished)
    }))

  it.scoped("released unused while its body arrives, the request is aborted", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.write("{\"start\":")
      })
      const deadline = Deadlines.make(undefined, 0)
      const response = yield* get(server.url, deadline)
      expect(response.status).toBe(200)
      deadline.releaseAttached(false)
      yield* Effect.promise(() => server.seen[0]!.aborted)
    }))

  it.scopedLive("released before it is sent (its deadline passed first), it fails at once and sends nothing", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => res.end("never asked for"))
      const deadline = Deadlines.make(undefined, 0)
      deadline.releaseAttached(false)
      const error = yield* Effect.flip(get(server.url, deadline))
      expect(error.reason).toBe("network")
      expect((error.cause as Error).name).toBe("AbortError")
      yield* Effect.sleep("50 millis")
      expect(server.seen.length).toBe(0)
    }))

  it.scopedLive("a request whose scope closed before it is sent fails at once and sends nothing", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => res.end("never asked for"))
      const scope = yield* Scope.make()
      yield* Scope.close(scope, Exit.interrupt(FiberId.none))
      const error = yield* Effect.flip(direct.send({ method: "GET", url: server.url, headers: {} }, scope))
      expect(error.reason).toBe("network")
      expect((error.cause as Error).name).toBe("AbortError")
      yield* Effect.sleep("50 millis")
      expect(server.seen.length).toBe(0)
    }))
})

describe("HttpTransport layers", () => {
  it.scoped("layerUndici sends through the given dispatcher", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: "assistant", content: "Counted." }, finish_reason: "stop" }]
          })
        )
      })
      const dispatched: Array<string> = []
      class CountingAgent extends Agent {
        override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
          dispatched.push(`${options.method} ${options.path}`)
          return super.dispatch(options, handler)
        }
      }
      const agent = new CountingAgent()
      yield* Effect.addFinalizer(() => Effect.promise(() => agent.close()))
      const result = yield* Llm.complete([Message.user("Hi")]).pipe(
        Effect.provide(
          Local.layer({ baseUrl: server.url }).pipe(Layer.provide(HttpTransport.layerUndici({ dispatcher: agent })))
        )
      )
      expect(result.content).toBe("Counted.")
      expect(dispatched).toEqual(["POST /v1/chat/completions"])
    }))
})
