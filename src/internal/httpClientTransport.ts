/**
 * The transport through an `@effect/platform` `HttpClient`, for runtimes
 * other than Node or a client with middleware.
 *
 * @internal
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Channel from "effect/Channel"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Request, Response, Service } from "./transport.js"
import { TransportError } from "./transport.js"

const networkError = (error: { readonly cause?: unknown }) => new TransportError({ reason: "network", cause: error.cause })

const tooLarge = new TransportError({ reason: "tooLarge" })

/**
 * The length a body will have, when the response says so and nothing will
 * transform it on the way (a compressed body decoded by `fetch` can be larger
 * than its `content-length`).
 */
const plainLength = (headers: Readonly<Record<string, string | undefined>>): number | undefined => {
  const encoding = headers["content-encoding"]
  if (encoding !== undefined && encoding !== "identity") return undefined
  const length = headers["content-length"]
  if (length === undefined || !/^\d{1,15}$/.test(length)) return undefined
  return Number(length)
}

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

const responseOf = (response: HttpClientResponse.HttpClientResponse): Response => {
  const headers = response.headers
  const length = plainLength(headers)
  return {
    status: response.status,
    headers,
    bytes: (limit) => {
      if (length === undefined) return readChunks(response, limit)
      if (length > limit) return Effect.fail(tooLarge)
      return Effect.mapBoth(response.arrayBuffer, { onFailure: networkError, onSuccess: (body) => new Uint8Array(body) })
    },
    body: Channel.mapError(Stream.toChannel(response.stream), networkError)
  }
}

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
        // a success exit means the reply was used: leave it be; anything else aborts the request
        const release = Scope.addFinalizerExit(abort, (exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(inner, exit))
        // redirects are never followed: a fetch-based client would, and carry x-api-key to the other origin
        const execute = Effect.mapInputContext(scopedClient.execute(outgoing), (context: Context.Context<never>) =>
          Context.add(Context.add(context, Scope.Scope, inner), FetchHttpClient.RequestInit, {
            ...Option.getOrUndefined(Context.getOption(context, FetchHttpClient.RequestInit)),
            redirect: "manual"
          }))
        return Effect.zipRight(release, Effect.mapBoth(execute, { onFailure: networkError, onSuccess: responseOf }))
      })
  }
}

/** The transport through the `HttpClient` in context. */
export const fromContext: Effect.Effect<Service, never, HttpClient.HttpClient> = Effect.map(HttpClient.HttpClient, make)
