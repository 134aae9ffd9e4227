/**
 * The transport through an `@effect/platform` `HttpClient`, for runtimes
 * other than Node or a client with middleware.
 *
 * @internal
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { nativeTracer } from "./tracing.js"
import {
  type BodyReader,
  plainLength,
  type Request,
  requestIdHeaders,
  type Response,
  type Service,
  TransportError
} from "./transport.js"

const networkError = (error: { readonly cause?: unknown }) =>
  new TransportError({ reason: "network", cause: error.cause })

const tooLarge = new TransportError({ reason: "tooLarge" })

/** Reads a body of unknown length chunk by chunk, failing past `limit` bytes. */
const readChunks = (response: HttpClientResponse.HttpClientResponse, limit: number) =>
  Effect.suspend(() => {
    const parts: Array<Uint8Array> = []
    let size = 0
    return response.stream.pipe(
      Stream.mapError(networkError),
      Stream.runForEachChunk((chunk) => {
        for (const part of chunk) {
          size += part.length
          if (size > limit) return Effect.fail(tooLarge)
          parts.push(part)
        }
        return Effect.void
      }),
      Effect.map(() => Buffer.concat(parts, size))
    )
  })

/** Past this many unread bytes, the reading fiber waits for the consumer. */
const highWaterMark = 256 * 1024

/**
 * The platform's body stream read batch by batch: a fiber forked into
 * `scope` on the first wait reads the stream into a buffer (waiting while the
 * buffer is full); closing `scope` interrupts it, and the reader then reports
 * the request aborted.
 */
const readerOf = (response: HttpClientResponse.HttpClientResponse, scope: Scope.Scope): BodyReader => {
  let chunks: Array<Uint8Array> = []
  let buffered = 0
  /** `null` once the body ended, the failure once it failed; `undefined` while it flows. */
  let state: null | TransportError | undefined
  let wake: (() => void) | undefined
  let drained: (() => void) | undefined
  let started = false
  const notify = () => {
    const waiting = wake
    wake = undefined
    waiting?.()
  }
  const fill = Stream.runForEachChunk(response.stream, (chunk) => {
    for (const part of chunk) {
      chunks.push(part)
      buffered += part.length
    }
    notify()
    if (buffered <= highWaterMark) return Effect.void
    return Effect.async<void>((resume) => {
      drained = () => resume(Effect.void)
    })
  }).pipe(
    Effect.matchCause({
      onSuccess: () => {
        state = null
      },
      onFailure: (cause) => {
        const failure = Cause.failureOption(cause)
        state = Option.isSome(failure)
          ? networkError(failure.value)
          : new TransportError({ reason: "network", cause: Cause.squash(cause) })
      }
    }),
    Effect.ensuring(Effect.sync(() => {
      if (state === undefined) {
        state = new TransportError({ reason: "network", cause: new Error("the request was aborted") })
      }
      notify()
    }))
  )
  const start = Effect.suspend(() => {
    if (started) return Effect.void
    started = true
    return Effect.asVoid(Effect.forkIn(fill, scope))
  })
  return {
    poll: () => {
      if (chunks.length > 0) {
        const batch = chunks
        chunks = []
        buffered = 0
        const resume = drained
        drained = undefined
        resume?.()
        return batch
      }
      return state
    },
    ready: Effect.zipRight(
      start,
      Effect.async<void>((resume) => {
        if (chunks.length > 0 || state !== undefined) return resume(Effect.void)
        wake = () => resume(Effect.void)
      })
    )
  }
}

const responseOf = (response: HttpClientResponse.HttpClientResponse, scope: Scope.Scope): Response => {
  const headers = response.headers
  const length = plainLength(headers)
  const reader = readerOf(response, scope)
  return {
    status: response.status,
    headers,
    bytes: (limit) => {
      if (length === undefined) return readChunks(response, limit)
      if (length > limit) return Effect.fail(tooLarge)
      return Effect.mapBoth(response.arrayBuffer, {
        onFailure: networkError,
        onSuccess: (body) => new Uint8Array(body)
      })
    },
    reader
  }
}

/**
 * Runs `effect` with the request-id headers among the names the platform's
 * `http.client` span redacts: a proxy may echo the key into them, and the
 * span records every response header by name.
 */
const withRequestIdsRedacted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.locallyWith(effect, Headers.currentRedactedNames, (names) => [...names, ...requestIdHeaders])

/**
 * Runs `effect` with tracing off under Effect's built-in tracer: the
 * platform's `http.client` span would be recorded nowhere, and costs more
 * than the request's own work. Under an installed tracer it is made.
 */
const withoutSpansUntraced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.withFiberRuntime<A, E, R>((fiber) =>
    fiber.currentTracer === nativeTracer ? Effect.withTracerEnabled(effect, false) : effect
  )

/** A transport sending through `client`. */
export const make = (client: HttpClient.HttpClient): Service => {
  /** The client, its requests aborted when the scope they ran in closes. */
  const scopedClient = HttpClient.withScope(client)
  return {
    send: (request: Request, abort: Scope.Scope) =>
      Effect.flatMap(Scope.make(), (inner) => {
        const { "content-type": contentType = "application/json", ...headers } = request.headers
        const base = HttpClientRequest.make(request.method)(request.url, { headers })
        const outgoing = request.body === undefined ? base : HttpClientRequest.bodyText(base, request.body, contentType)
        // the platform aborts a request whose scope closes, whatever the exit: a body not read to its end is cut off
        const release = Scope.addFinalizerExit(abort, (exit) => Scope.close(inner, exit))
        // redirects are never followed: a fetch-based client would, and carry x-api-key to the other origin
        const execute = Effect.mapInputContext(scopedClient.execute(outgoing), (context: Context.Context<never>) =>
          Context.add(Context.add(context, Scope.Scope, inner), FetchHttpClient.RequestInit, {
            ...Option.getOrUndefined(Context.getOption(context, FetchHttpClient.RequestInit)),
            redirect: "manual"
          }))
        return Effect.zipRight(
          release,
          Effect.mapBoth(withoutSpansUntraced(withRequestIdsRedacted(execute)), {
            onFailure: networkError,
            onSuccess: (response) =>
              responseOf(response, inner)
          })
        )
      })
  }
}

/** The transport through the `HttpClient` in context. */
export const fromContext: Effect.Effect<Service, never, HttpClient.HttpClient> = Effect.map(HttpClient.HttpClient, make)
