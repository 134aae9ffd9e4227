/**
 * How the HTTP backends reach the network: one request out, a status, headers
 * and a body back. The default sends straight through undici (Node's own HTTP
 * client library), with no stream adapter or response wrapper in between,
 * which is what keeps a call close to the cost of a hand-written client (see
 * BENCHMARKS.md). `layerHttpClient` routes every request through the
 * application's `@effect/platform` `HttpClient` instead: any runtime, any
 * middleware, at the price of that client's overhead.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Dispatcher } from "undici"
import type { Service } from "./internal/transport.js"
import * as UndiciTransport from "./internal/undiciTransport.js"

export {
  /** @since 0.1.0 */
  type BodyReader,
  /** @since 0.1.0 */
  type Request,
  /** @since 0.1.0 */
  type Response,
  /** @since 0.1.0 */
  type Service,
  /** @since 0.1.0 */
  TransportError
} from "./internal/transport.js"

/**
 * Options of the undici transport.
 *
 * @since 0.1.0
 */
export interface UndiciOptions {
  /** The dispatcher to send with (an `Agent`, a `ProxyAgent`, a `Pool`); default: undici's global dispatcher. */
  readonly dispatcher?: Dispatcher | undefined
}

/**
 * The transport straight over undici.
 *
 * @since 0.1.0
 */
export const undici = (options: UndiciOptions = {}): Service => UndiciTransport.make(options.dispatcher)

/**
 * The transport every HTTP backend uses: undici's global dispatcher unless a
 * layer of this module provides another.
 *
 * @since 0.1.0
 */
export class HttpTransport extends Context.Reference<HttpTransport>()("effect-llm/HttpTransport", {
  defaultValue: (): Service => defaultTransport
}) {}

const defaultTransport = undici()

/**
 * Sends through undici with the given dispatcher (for a proxy, custom TLS, or pool sizes).
 *
 * @since 0.1.0
 */
export const layerUndici = (options: UndiciOptions = {}): Layer.Layer<HttpTransport> =>
  Layer.succeed(HttpTransport, undici(options))

/**
 * Sends through the application's `HttpClient` (for `FetchHttpClient` on
 * runtimes other than Node, or a client with middleware). Redirects are still
 * never followed.
 *
 * @since 0.1.0
 */
export const layerHttpClient: Layer.Layer<HttpTransport, never, HttpClient.HttpClient> = Layer.effect(
  HttpTransport,
  // loaded when the layer is built: an application on the default transport never loads @effect/platform's client
  Effect.flatMap(
    Effect.promise(() => import("./internal/httpClientTransport.js")),
    (HttpClientTransport) => HttpClientTransport.fromContext
  )
)
