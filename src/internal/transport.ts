/**
 * What a transport is: the shapes shared by `HttpTransport` and its
 * implementations (kept apart from both so neither imports the other).
 *
 * @internal
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** The response headers a provider's request id comes in, in order of preference. */
export const requestIdHeaders: ReadonlyArray<string> = ["x-request-id", "request-id", "x-generation-id"]

/** One request: what every backend sends. */
export interface Request {
  readonly method: "GET" | "POST"
  /** The absolute URL. */
  readonly url: string
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>
  /** A JSON text, for a POST. */
  readonly body?: string | undefined
}

/**
 * The body read batch by batch, for a consumer that runs its own loop (the
 * stream decoder reads it this way, so a network read costs one step of one
 * channel rather than a hand-over between two).
 */
export interface BodyReader {
  /**
   * What arrived since the last call: the bytes of one or more reads, `null`
   * at the end, the failure, or `undefined` when nothing has (wait on `ready`).
   */
  readonly poll: () => Array<Uint8Array> | null | TransportError | undefined
  /** Completes when `poll` has something to return. */
  readonly ready: Effect.Effect<void>
}

/** A response whose status and headers have arrived; its body is read once, whole or as a stream. */
export interface Response {
  readonly status: number
  /** Header names in lower case; a repeated header's values joined with ", ". */
  readonly headers: Readonly<Record<string, string | undefined>>
  /**
   * The whole body; fails with reason `"tooLarge"` past `limit` bytes (the
   * request is then aborted), at once when a plain `content-length` says so.
   */
  readonly bytes: (limit: number) => Effect.Effect<Uint8Array, TransportError>
  /** The body, batch by batch as it arrives; read it one way only (this or `bytes`). */
  readonly reader: BodyReader
}

/**
 * The length a body will have, when the response says so and nothing will
 * transform it on the way (a compressed body decoded by `fetch` can be larger
 * than its `content-length`).
 */
export const plainLength = (headers: Readonly<Record<string, string | undefined>>): number | undefined => {
  const encoding = headers["content-encoding"]
  if (encoding !== undefined && encoding !== "identity") return undefined
  const length = headers["content-length"]
  if (length === undefined || !/^\d{1,15}$/.test(length)) return undefined
  return Number(length)
}

/**
 * Why no response, or no whole body, came back: the network failed (`cause`
 * is what the client threw, with its `code`), or the body outgrew the limit.
 */
export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: "network" | "tooLarge"
  readonly cause?: unknown
}> {}

/**
 * Where a request sent without a scope is released: the transport attaches
 * how to release it when it starts the request (`completed`: the body was
 * read to its end, and what is left may arrive and be dropped; else the
 * request is aborted). A target released before the attach releases at once.
 */
export interface ReleaseTarget {
  readonly attach: (release: (completed: boolean) => void) => void
}

/**
 * A transport that can also send a request released through a
 * `ReleaseTarget` rather than a scope: the default transport, whose callers
 * then make and close no scope per attempt.
 */
export interface DirectService extends Service {
  readonly sendDirect: (request: Request, target: ReleaseTarget) => Effect.Effect<Response, TransportError>
}

/** Whether `service` can send without a scope. */
export const isDirect = (service: Service): service is DirectService => "sendDirect" in service

/** Sends requests. */
export interface Service {
  /**
   * Sends `request`. Closing `abort` aborts it, whether it is still waiting
   * for the response or reading the body; a request read to its end is left
   * alone, so its connection is kept for the next one. Interrupting a wait
   * (the send, `bytes`, `ready`) ends the wait only: the request is aborted
   * when `abort` closes, as it does with the interruption.
   */
  readonly send: (request: Request, abort: Scope.Scope) => Effect.Effect<Response, TransportError>
}
