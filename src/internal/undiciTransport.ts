/**
 * The transport straight over undici's dispatcher API: the response's
 * callbacks fill a buffer that the response's reader drains, one batch of
 * network reads at a time, with no Node stream, web stream or extra fiber in
 * between.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { type Dispatcher, getGlobalDispatcher } from "undici"
import { timer } from "./deadlines.js"
import { spanned } from "./tracing.js"
import {
  type BodyReader,
  type DirectService,
  plainLength,
  type ReleaseTarget,
  type Request,
  type Response,
  TransportError
} from "./transport.js"
import { displayUrl } from "./validate.js"

/** Past this many unread bytes, the socket is paused until the consumer catches up. */
const highWaterMark = 256 * 1024

/** How long the rest of a body the consumer left unread may take to arrive before the request is aborted. */
const drainMillis = 2_000

/** Why an exchange was aborted, as undici reports it back. */
const abortReason = (): Error => Object.assign(new Error("the request was aborted"), { name: "AbortError" })

/** Response headers as undici hands them over (a repeated header as an array). */
type Headers = Record<string, string | Array<string> | undefined>

/** Lower-case names, one string per header. */
const flatten = (headers: Headers): Record<string, string | undefined> => {
  const out: Record<string, string | undefined> = {}
  for (const name in headers) {
    const value = headers[name]
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

/**
 * One request and its response, as undici's handler: it hands the response
 * over when its headers arrive, then buffers the body for whoever reads it.
 */
class Exchange implements Dispatcher.DispatchHandler {
  /** undici's handle on the request (pause, resume, abort), once it started. */
  controller: Dispatcher.DispatchController | undefined
  /** Set until the response starts: hands it (or the failure) to the waiting fiber. */
  onResponse: ((exit: Exit.Exit<Response, TransportError>) => void) | undefined
  /** The reads not handed over yet, and their size. */
  chunks: Array<Buffer> = []
  buffered = 0
  /** Every byte of the body so far, handed over or not. */
  received = 0
  ended = false
  failure: TransportError | undefined
  aborted = false
  /** The reader waiting for data, if any: its fiber's resumption. */
  wake: ((effect: Effect.Effect<void>) => void) | undefined
  /** `bytes(limit)` waiting for the whole body, if it was called. */
  whole: ((exit: Exit.Exit<Uint8Array, TransportError>) => void) | undefined
  /** The bound `bytes(limit)` set on the whole body. */
  limit = Infinity
  /** The consumer stopped reading: what is left is dropped as it comes. */
  discarding = false
  /** Stops the timer that aborts a drain taking too long. */
  stopDrain: (() => void) | undefined

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.aborted) controller.abort(abortReason())
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Headers): void {
    if (statusCode < 200) return
    const respond = this.onResponse
    this.onResponse = undefined
    respond?.(Exit.succeed(this.response(statusCode, flatten(headers))))
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.discarding) return
    this.received += chunk.length
    if (this.received > this.limit) {
      this.fail(new TransportError({ reason: "tooLarge" }))
      this.abort()
      return
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (this.whole === undefined && this.buffered > highWaterMark) controller.pause()
    this.notify()
  }

  onResponseEnd(): void {
    this.ended = true
    this.stopDrain?.()
    const whole = this.whole
    if (whole !== undefined) {
      this.whole = undefined
      whole(Exit.succeed(this.take()))
    }
    this.notify()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.stopDrain?.()
    this.fail(new TransportError({ reason: "network", cause: error }))
  }

  /** Records `failure` and hands it to whoever waits. */
  fail(failure: TransportError): void {
    if (this.failure !== undefined || this.ended) return
    this.failure = failure
    const respond = this.onResponse
    this.onResponse = undefined
    respond?.(Exit.fail(failure))
    const whole = this.whole
    this.whole = undefined
    whole?.(Exit.fail(failure))
    this.notify()
  }

  notify(): void {
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake(Effect.void)
    }
  }

  /** The buffered bytes as one array, the buffer emptied. */
  take(): Uint8Array {
    const chunks = this.chunks
    const size = this.buffered
    this.chunks = []
    this.buffered = 0
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
  }

  /**
   * Aborts the request unless it has ended. One that has not started (it
   * waits for a connection) fails at once; undici aborts it when it starts.
   */
  abort(): void {
    if (this.ended || this.aborted) return
    this.aborted = true
    if (this.controller === undefined) this.fail(new TransportError({ reason: "network", cause: abortReason() }))
    else this.controller.abort(abortReason())
  }

  /**
   * The consumer is done with a body it did not read to the end: let the
   * rest arrive and drop it, so the connection can carry the next request,
   * unless it takes longer than `drainMillis`.
   */
  drain(): void {
    if (this.ended || this.aborted || this.failure !== undefined || this.discarding) return
    this.discarding = true
    this.chunks = []
    this.buffered = 0
    this.stopDrain = timer(drainMillis, () => this.abort(), true)
    if (this.controller?.paused === true) this.controller.resume()
  }

  /** What the caller gets once the headers are in: status, headers, and the body read whole or batch by batch. */
  response(status: number, headers: Record<string, string | undefined>): Response {
    const reader: BodyReader = {
      poll: () => {
        if (this.buffered > 0) {
          const batch = this.chunks
          this.chunks = []
          this.buffered = 0
          if (this.controller?.paused === true) this.controller.resume()
          return batch
        }
        if (this.failure !== undefined) return this.failure
        return this.ended ? null : undefined
      },
      // no canceller: one wraps every wait in an interrupt handler (about 2 of 10 µs per paced read in
      // process). An interrupted wait's resumption is dead (a fiber ignores a second resumption), and
      // the exchange it lingers in is aborted by the attempt's scope
      ready: Effect.async<void>((resume) => {
        if (this.buffered > 0 || this.failure !== undefined || this.ended) return resume(Effect.void)
        this.wake = resume
      })
    }
    const length = plainLength(headers)
    return {
      status,
      headers,
      reader,
      // no canceller either, for the same reason as `ready`'s
      bytes: (limit) =>
        Effect.async<Uint8Array, TransportError>((resume) => {
          if (this.failure !== undefined) return resume(Effect.fail(this.failure))
          if (this.received > limit || (length !== undefined && length > limit)) {
            this.abort()
            return resume(Effect.fail(new TransportError({ reason: "tooLarge" })))
          }
          if (this.ended) return resume(Effect.succeed(this.take()))
          this.limit = limit
          this.whole = resume
          if (this.controller?.paused === true) this.controller.resume()
        })
    }
  }
}

/**
 * The origin and path of a URL, the URL as spans show it (user info masked),
 * and its host and port (the scheme's default when none is given), parsed
 * once per distinct URL in a row.
 */
const targetOf = (() => {
  let lastUrl = ""
  let last = { origin: "", path: "", shown: "", host: "", port: 0 }
  return (url: string) => {
    if (url !== lastUrl) {
      const parsed = new URL(url)
      last = {
        origin: parsed.origin,
        path: parsed.pathname + parsed.search,
        shown: displayUrl(url),
        host: parsed.hostname.replace(/^\[|\]$/g, ""),
        port: parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port)
      }
      lastUrl = url
    }
    return last
  }
})()

/**
 * Sends `request` through `dispatcher` (undici's global one when undefined);
 * `attach` ties the exchange to what releases it, and returns the effect
 * that does so, if it takes one. Under an installed tracer, the request runs
 * in an `http.client <method>` span with its method, URL and status, and
 * never its headers: they carry the key.
 */
const sendWith = (
  dispatcher: Dispatcher | undefined,
  request: Request,
  attach: (exchange: Exchange) => Effect.Effect<void> | undefined
): Effect.Effect<Response, TransportError> =>
  Effect.suspend(() => {
    const exchange = new Exchange()
    const attached = attach(exchange)
    let target: ReturnType<typeof targetOf>
    try {
      target = targetOf(request.url)
    } catch (error) {
      // not a URL (Node's ERR_INVALID_URL): nothing was sent
      return Effect.fail(new TransportError({ reason: "network", cause: error }))
    }
    const { host, origin, path, port, shown } = target
    // no canceller (each costs an interrupt-safe region around the wait): an interrupted send's
    // resumption is dead, and its release, which comes with the interruption, aborts the exchange
    const send = Effect.async<Response, TransportError>((resume) => {
      // released before it was sent (its deadline passed first): it is not sent
      if (exchange.failure !== undefined) return resume(Effect.fail(exchange.failure))
      exchange.onResponse = resume
      try {
        ;(dispatcher ?? getGlobalDispatcher()).dispatch({
          origin,
          path,
          method: request.method,
          headers: request.headers,
          body: request.body ?? null,
          // the caller keeps its own deadlines; undici's would cut long generations short
          headersTimeout: 0,
          bodyTimeout: 0
        }, exchange)
      } catch (error) {
        exchange.onResponse = undefined
        resume(Effect.fail(new TransportError({ reason: "network", cause: error })))
      }
    })
    return spanned(`http.client ${request.method}`, {
      kind: "client",
      attributes: {
        "http.request.method": request.method,
        "url.full": shown,
        "server.address": host,
        "server.port": port
      }
    }, (span) => {
      const sent = span === undefined
        ? send
        : Effect.tap(send, (response) => span.attribute("http.response.status_code", response.status))
      return attached === undefined ? sent : Effect.zipRight(attached, sent)
    })
  })

/** How an exchange is released: a used reply's rest is drained (its connection kept), anything else aborts it. */
const release = (exchange: Exchange) => (completed: boolean): void => {
  if (completed) exchange.drain()
  else exchange.abort()
}

/**
 * A transport sending through `dispatcher` (undici's global dispatcher when
 * none is given), with `sendDirect` for the providers' own attempts.
 */
export const make = (dispatcher?: Dispatcher): DirectService => ({
  send: (request: Request, abort: Scope.Scope) =>
    sendWith(dispatcher, request, (exchange) =>
      // a success exit means the reply was used: drain what is left; anything else aborts
      Scope.addFinalizerExit(abort, (exit) => Effect.sync(() => release(exchange)(Exit.isSuccess(exit))))),
  sendDirect: (request: Request, target: ReleaseTarget) =>
    sendWith(dispatcher, request, (exchange) => {
      target.attach(release(exchange))
      return undefined
    })
})
